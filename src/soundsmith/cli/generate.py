"""``soundsmith generate``: text in, audio file(s) out, through the model family's declared pipeline.

One prompt: ``soundsmith generate "a flute plays a high soft note" -o flute.wav``. Many: ``--prompts-file F
--out-dir D`` (text lines, or JSONL objects with per-line overrides) writes one file per prompt plus
``D/results.jsonl``. Audio-to-audio: ``--init-audio F --strength S``; inpainting: ``--init-audio F --inpaint
START:END``. The functions here (:func:`read_prompts_file`, :func:`generate_many`, :func:`family_kwargs`) are the
library side of the command, callable from Python.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

# Kept in step with soundsmith.pipelines.base (tests/cli checks it) so that `--help` need not import torch.
DEFAULT_DURATION_S = 1.0
MAX_DURATION_S = 600.0

# command-line option -> the pipeline keyword it becomes (families declare support through their signature)
FAMILY_OPTIONS = {
    "--temperature": "temperature",
    "--top-k": "top_k",
    "--top-p": "top_p",
    "--negative-prompt": "negative_prompt",
    "--init-audio": "init_audio",
    "--strength": "strength",
    "--inpaint": "inpaint",
    "--truncation": "truncation",
    "--compose": "compose",
    "--tune": "tune",
    "--compute": "compute",
}
# keys a JSONL line of --prompts-file may set
LINE_KEYS = (
    "prompt",
    "name",
    "duration",
    "steps",
    "guidance",
    "seed",
    "num_candidates",
    *FAMILY_OPTIONS.values(),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate audio from a text prompt", description="Generate audio from text."
    )
    p.add_argument(
        "prompt", nargs="?", default=None, help='what to generate, e.g. "three beeps over steady rain"'
    )
    p.add_argument(
        "--model",
        default="default",
        help="model directory, run directory, or shipped model name (`soundsmith models list` lists them)",
    )
    p.add_argument("-o", "--out", default="out.wav", help="output audio file (.wav, .flac, .ogg)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds to generate (default: {DEFAULT_DURATION_S:g}, unless the model's pipeline sets its own; "
        f"at most {MAX_DURATION_S:g})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "-n",
        "--num-candidates",
        type=int,
        default=1,
        help="candidates to generate (out-0.wav, out-1.wav...; diffusion families rank them best first)",
    )
    p.add_argument("--steps", type=int, help="sampler steps (diffusion families)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (diffusion families)")
    p.add_argument("--negative-prompt", help="what to steer away from (diffusion families)")
    p.add_argument("--temperature", type=float, help="sampling temperature (autoregressive families)")
    p.add_argument("--top-k", type=int, help="top-k sampling (autoregressive families)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (autoregressive families)")
    p.add_argument("--init-audio", help="audio file to vary (--strength) or inpaint (--inpaint)")
    p.add_argument(
        "--strength", type=float, help="with --init-audio: 0 keeps the input, 1 ignores it (default 0.6)"
    )
    p.add_argument(
        "--inpaint", metavar="START:END", help="with --init-audio: seconds to regenerate, e.g. 1.5:2.5"
    )
    p.add_argument(
        "--prompts-file",
        help='one prompt per line, or JSONL objects with per-line overrides ({"prompt": ..., "seed": 3})',
    )
    p.add_argument("--out-dir", help="with --prompts-file: folder for the files and results.jsonl")
    p.add_argument("--truncation", type=float, help="noise truncation (GAN families)")
    p.add_argument(
        "--compose",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="generate a layered prompt ('three beeps over steady rain', 'a bell rings, then a dog barks') part "
        "by part and mix the parts, a counted sound ('a bell rings three times') once and repeat it (latent "
        "diffusion; default: the model's setting)",
    )
    p.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="shift a clip whose prompt names one held note ('a harsh buzzer at C3') to that note, or a sound "
        "event's register ('a beep (low register)') into it by octaves, when its pitch is off; draw a phrase asked "
        "to rise or fall ('a rising scale') again when it does not move that way (latent diffusion; default: the "
        "model's setting)",
    )
    p.add_argument(
        "--compute",
        default=None,
        metavar="{float32,int8}",
        help="arithmetic of the denoiser's matrix products on the CPU: int8 is faster (~1.5-1.8x the denoiser's "
        "speed), float32 exact "
        "(latent diffusion; default: the model's setting)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="write the audio while it is generated (families that stream, e.g. token_lm)",
    )
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="RUN[:SCALE]",
        help="attach a LoRA adapter (a `soundsmith finetune --method lora` run); repeat for several",
    )
    p.add_argument(
        "--lora-scale",
        type=float,
        help="strength of the LoRA adapters (--model RUN of a LoRA fine-tune, --lora without :SCALE): 0 = off, "
        "1 = full (default)",
    )
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def parse_lora(value: str) -> str | tuple[str, float]:
    """``"runs/a"`` -> ``"runs/a"``; ``"runs/a:0.5"`` -> ``("runs/a", 0.5)`` (a suffix that is not a number stays
    part of the path)."""
    path, sep, scale = value.rpartition(":")
    if sep and path:
        try:
            return path, float(scale)
        except ValueError:
            pass
    return value


def parse_inpaint(value: Any) -> tuple[float, float]:
    """``"1.5:2.5"`` or ``[1.5, 2.5]`` -> ``(1.5, 2.5)``; anything else is a one-line ConfigError."""
    from soundsmith.errors import ConfigError

    try:
        parts = value.split(":") if isinstance(value, str) else list(value)
        start, end = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"--inpaint {value!r}: give START:END in seconds, e.g. 1.5:2.5") from None
    return start, end


def family_kwargs(pipe: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The family options that were given (not None), checked against what ``pipe`` takes.

    ``options`` maps pipeline keywords (``FAMILY_OPTIONS`` values) to values; an option the family's
    ``generate`` does not take is a one-line ConfigError naming it.
    """
    from soundsmith.errors import ConfigError

    given = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(pipe.generate).parameters
    flags = {v: k for k, v in FAMILY_OPTIONS.items()}
    for key in given:
        if key not in accepted:
            raise ConfigError(f"{flags.get(key, key)} is not supported by the {pipe.family} family")
    if "inpaint" in given:
        given["inpaint"] = parse_inpaint(given["inpaint"])
    return given


def read_prompts_file(path: str | Path) -> list[dict[str, Any]]:
    """Requests from a prompts file: a text line is ``{"prompt": line}``; a line starting with ``{`` is a JSON
    object with ``prompt`` and any of :data:`LINE_KEYS`. Blank lines and ``#`` comments are skipped."""
    from soundsmith.errors import ConfigError

    path = Path(path)
    requests: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            requests.append({"prompt": line})
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
            raise ConfigError(f'{path}:{number}: a JSON line needs a "prompt" string')
        unknown = sorted(set(item) - set(LINE_KEYS))
        if unknown:
            raise ConfigError(
                f"{path}:{number}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(LINE_KEYS)}"
            )
        requests.append(item)
    if not requests:
        raise ConfigError(f'{path}: no prompts (one per line, or JSON objects with a "prompt")')
    return requests


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "sound"


def generate_many(
    pipe: Any,
    requests: list[dict[str, Any]],
    out_dir: str | Path,
    defaults: dict[str, Any],
    progress: bool = True,
) -> Path:
    """Run every request (``defaults`` overridden per request) and write ``out_dir/<index>-<slug>.wav`` (or the
    request's ``name``) plus ``out_dir/results.jsonl`` (one line per request: files, prompt, seed, provenance).
    Returns the path of ``results.jsonl``."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    with open(results, "w", encoding="utf-8") as log:
        for index, request in enumerate(tqdm(requests, desc="prompts", disable=not progress)):
            settings = {**defaults, **{k: v for k, v in request.items() if k not in ("prompt", "name")}}
            family = family_kwargs(pipe, {k: settings.pop(k, None) for k in FAMILY_OPTIONS.values()})
            result = pipe(request["prompt"], progress=False, **settings, **family)
            name = request.get("name") or f"{index:04d}-{_slug(request['prompt'])}"
            files = result.save(out_dir / f"{name}.wav")
            row = {
                "index": index,
                "prompt": request["prompt"],
                "seed": result.seed,
                "files": [str(f) for f in files],
            }
            row.update({k: v for k, v in result.meta.items() if k not in row})
            log.write(json.dumps(row, default=str) + "\n")
            log.flush()
    return results


def run(args: argparse.Namespace) -> int:
    from soundsmith.errors import ConfigError, ModelError
    from soundsmith.models.registry import shipped_models
    from soundsmith.pipelines import load_pipeline

    if (args.prompt is None) == (args.prompts_file is None):
        raise ConfigError('give one prompt ("a bell rings") or --prompts-file F --out-dir D, not both')
    if args.prompts_file is not None and not args.out_dir:
        raise ConfigError("--prompts-file needs --out-dir (the folder for the files and results.jsonl)")
    if args.prompts_file is not None and args.stream:
        raise ConfigError(
            "--stream writes one file as it is generated; it does not combine with --prompts-file"
        )
    if args.prompts_file is not None:
        requests = read_prompts_file(args.prompts_file)  # bad files fail before the model loads
    shipped = shipped_models()
    if args.model == "default" and "default" not in shipped:
        names = ", ".join(shipped) or "none"
        raise ModelError(
            f"there is no default generator yet; give --model a run or model directory (shipped models: {names})"
        )
    adapters = [parse_lora(v) for v in args.lora]
    pipe = load_pipeline(args.model, device=args.device, adapters=adapters, lora_scale=args.lora_scale)
    from soundsmith.models.card import warn_if_unknown

    for prompt in [args.prompt] if args.prompts_file is None else [r["prompt"] for r in requests]:
        if warning := warn_if_unknown(pipe, prompt):  # the prompt names nothing the model was trained on
            print(f"warning: {warning}", file=sys.stderr)
    options = {kw: getattr(args, flag[2:].replace("-", "_")) for flag, kw in FAMILY_OPTIONS.items()}
    common = {
        "duration": args.duration,
        "steps": args.steps,
        "guidance": args.guidance,
        "seed": args.seed,
        "num_candidates": args.num_candidates,
    }
    if args.prompts_file is not None:
        defaults = {**common, **{k: v for k, v in options.items() if v is not None}}
        print(generate_many(pipe, requests, args.out_dir, defaults))
        return 0
    kwargs = family_kwargs(pipe, options)
    if args.stream:
        if "on_chunk" not in inspect.signature(pipe.generate).parameters:
            raise ConfigError(f"--stream is not supported by the {pipe.family} family")
        from soundsmith.pipelines.streaming import StreamWriter

        with StreamWriter(args.out, pipe.sample_rate, args.num_candidates) as writer:
            result = pipe(args.prompt, **common, **kwargs, on_chunk=writer)
    else:
        result = pipe(args.prompt, **common, **kwargs)
    for path in result.save(args.out):  # the whole result again, now with its provenance metadata
        print(path)
    for line in what_was_done(result.meta):
        print(line, file=sys.stderr)
    if warning := silence_warning(result.audio):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def what_was_done(meta: dict[str, Any]) -> list[str]:
    """One line each for what the pipeline did beyond generating the prompt as one clip: the parts it composed,
    counted sounds made as asked, notes tuned, speech or noise at its own guidance, parts drawn again (the same facts are in
    the WAV's metadata)."""
    lines = []
    if meta.get("composed"):
        lines.append(f"composed: {meta['composed']}")
    if meta.get("counted_as_asked"):
        lines.append(
            f"counted sound generated as asked (no event to repeat) for seeds {meta['counted_as_asked']}"
        )
    if meta.get("tuned_semitones"):
        shifts = "; ".join(", ".join(f"{s:+.2f}" for s in row) or "none" for row in meta["tuned_semitones"])
        lines.append(f"tuned to the named note or register by (semitones, per candidate): {shifts}")
    if meta.get("kind_guidance"):
        lines.append(f"generated at their kind's guidance (the model's kind_guidance): {meta['kind_guidance']}")
    if meta.get("redrawn_for_direction"):
        times = ", ".join(str(n) for n in meta["redrawn_for_direction"])
        lines.append(f"drawn again for not moving the asked pitch direction (draws made again, per candidate): {times}")
    if meta.get("dynamics_gain_db"):
        gains = "; ".join(", ".join(f"{g:+.1f}" for g in row) or "none" for row in meta["dynamics_gain_db"])
        lines.append(f"held to the soft or loud level asked (dB per part, per candidate): {gains}")
    if meta.get("cut_for_direction"):
        times = ", ".join(str(n) for n in meta["cut_for_direction"])
        lines.append(f"cut where the pitch last moved the asked direction (parts, per candidate): {times}")
    if meta.get("redrawn_for_pitch"):
        times = ", ".join(str(n) for n in meta["redrawn_for_pitch"])
        lines.append(f"drawn again for a pitch or register off its ask (draws made again, per candidate): {times}")
    return lines


def silence_warning(audio: Any) -> str | None:
    """One line when every candidate in ``audio`` ``[N, T]`` peaks below -60 dBFS (the model gave near-silence)."""
    import numpy as np

    from soundsmith.audio.loudness import SILENCE_PEAK

    audio = np.asarray(audio)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak >= SILENCE_PEAK:
        return None
    return (
        f"the audio is near-silent (peak {20 * np.log10(peak + 1e-12):.0f} dBFS); this model does that for some "
        "prompts: try another --seed, more --steps (e.g. 16) or -n 4 to pick the best of several"
    )
