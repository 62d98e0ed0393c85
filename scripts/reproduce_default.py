"""Reproduce the shipped text-to-audio default (``models/default``) from nothing but this repository: one command.

    python scripts/reproduce_default.py --out models/my_default [--work work/reproduce] [--teacher cpu|gpu]

Stages, in order (docs/latent_diffusion.md, "Reproducing the default, one command"; each is one of the documented
commands that made the shipped weights, with the same settings):

1. ``corpus``: ``soundsmith data synth`` (20 h of 4 s clips, seed 11: the corpus of the shipped run).
2. ``shift``: its register-shifted copies (``soundsmith data shift --with-source --every-shift``), for the decoder.
3. ``teacher``: the flow-matching denoiser from scratch (``configs/latent_diffusion/base.yaml``). ``--teacher gpu``
   (the shipped weights' way, 8 min on an H200): pack the corpus (``scripts/gpu_ld/prepare.py``), train in GPU memory
   (``scripts/gpu_ld/train.py``, batch 512, 572 s) and import the lowest-validation EMA weights; ``--teacher cpu``:
   ``soundsmith train`` on this machine (5,000 steps of batch 32, ~100 min on 2 cores; far weaker, see the docs).
4. ``guidance``: classifier-free guidance distilled into one pass (``scripts/ld_continue.py --method guidance``).
5. ``steps8``: two DPM-Solver++ steps of 16 into one of 8 (``--method steps --student-steps 8``).
6. ``steps12``: the 12-step int8 model taught by itself at 24 steps (``--student-steps 12``).
7. ``decoder``: the VAE's decoder tuned on the corpus and its shifted copies (``scripts/decoder_finetune.py``).
8. ``export``: the student with the tuned decoder, fp16, and the shipped pipeline settings
   (``configs/latent_diffusion/pipeline/default.yaml``: sampler, steps, guidance, composition, tuning, ...).

Every stage writes ``WORK/<stage>.done`` when it finishes and is skipped when that file exists; a stage killed
midway continues from its last checkpoint when the command is run again (the engine's resume is exact). Stages
read only their predecessors' outputs under ``--work``, never ``models/default``; the frozen parts (MiniLM, the
shipped VAE's encoder and the vocoder) are the shipped ones, whose own commands are in docs/autoencoders.md.
``--smoke`` runs every stage at toy size (a 3-minute corpus, a few steps each; ~2 min) to check the plumbing.
``--only STAGE`` / ``--until STAGE`` run part of the chain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("corpus", "shift", "teacher", "guidance", "steps8", "steps12", "decoder", "export")
PIPELINE_SETTINGS = ROOT / "configs" / "latent_diffusion" / "pipeline" / "default.yaml"

# the settings of the shipped run, stage by stage (docs/latent_diffusion.md), and the toy sizes of --smoke
FULL = {
    "hours": 20.0,
    "train_steps": None,  # base.yaml's 5,000
    "gpu_deadline_s": 572,
    "guidance_steps": 4000,
    "steps8_steps": 2000,
    "steps12_steps": 1000,
    "decoder": ["--clips", "6144", "--shifted-first", "3072"],
    "distill_valid_every": {"guidance": 500, "steps8": 250, "steps12": 250},
    "batch": 32,
}
SMOKE = {
    "hours": 0.05,
    "train_steps": 2,
    "gpu_deadline_s": 60,
    "guidance_steps": 2,
    "steps8_steps": 2,
    "steps12_steps": 2,
    "decoder": ["--clips", "24", "--shifted-first", "8", "--steps", "2"],
    "distill_valid_every": {"guidance": 1, "steps8": 1, "steps12": 1},
    "batch": 4,
}


def soundsmith_cli() -> list[str]:
    return [sys.executable, "-m", "soundsmith"]


def run(cmd: list[str], log: Path) -> None:
    """Run one command, its output appended to ``log`` (and echoed), failing loudly with the log's path."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        fh.flush()
        code = subprocess.call([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"reproduce_default: stage command failed (exit {code}); log {log}:\n" + "\n".join(tail))


def resume_flag(run_dir: Path) -> list[str]:
    return ["--resume"] if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()) else []


def distill(work: Path, log: Path, size: dict, stage: str, base: Path, method: str, student: int | None) -> Path:
    """One distillation stage through ``scripts/ld_continue.py``; returns its run directory."""
    run_dir = work / f"{stage}_run"
    steps = size[f"{stage}_steps"]
    lr = "1e-4" if method == "guidance" else "5e-5"
    cmd = [sys.executable, ROOT / "scripts" / "ld_continue.py", work / "corpus" / "manifest.jsonl", run_dir,
           "--base", base, "--method", method, "--guidance-range", "1", "4", "--steps", str(steps), "--lr", lr,
           "--ema", "0.998", "--valid-every", str(size["distill_valid_every"][stage]),
           "--threads", str(torch_threads()), "--batch-size", str(size["batch"])]  # fmt: skip
    if student is not None:
        cmd += ["--student-steps", str(student)]
    run(cmd + resume_flag(run_dir), log)
    return run_dir


def torch_threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or max(1, min(2, os.cpu_count() or 1))


def export(run_dir: Path, out: Path, log: Path, *flags: str) -> None:
    run([sys.executable, ROOT / "scripts" / "export_default.py", "--run", run_dir, "--out", out, *flags], log)


def stage_teacher(work: Path, log: Path, size: dict, args: argparse.Namespace) -> None:
    manifest = work / "corpus" / "manifest.jsonl"
    config = ROOT / "configs" / "latent_diffusion" / "base.yaml"
    run_dir = work / "teacher_run"
    if args.teacher == "cpu":
        cmd = [*soundsmith_cli(), "train", "--config", config, "--data", manifest, "--out", run_dir]
        if size["train_steps"]:
            cmd += ["--max-steps", str(size["train_steps"]), "--set", f"train.batch_size={size['batch']}",
                    "--set", "train.valid_every=1", "--set", "train.sample_every=0"]  # fmt: skip
        run(cmd + resume_flag(run_dir), log)
        model = run_dir / "model"
    else:  # a model directory of the same config (one step: its config and frozen parts), then the GPU run
        like = work / "teacher_init"
        if not (like / "model" / "config.json").exists():
            run([*soundsmith_cli(), "train", "--config", config, "--data", manifest, "--out", like,
                 "--max-steps", "1", "--set", "train.batch_size=2", "--set", "train.sample_every=0"], log)  # fmt: skip
        pack, gpu_out = work / "teacher_pack", work / "teacher_gpu"
        if not (pack / "part0" / "model_config.json").exists():
            run([sys.executable, ROOT / "scripts" / "gpu_ld" / "prepare.py", "--model", like / "model",
                 "--manifest", manifest, "--out", pack, "--valid", "512" if not args.smoke else "2",
                 "--first-part", "2500", "--per-part", "7200"], log)  # fmt: skip
        cmd = [sys.executable, ROOT / "scripts" / "gpu_ld" / "train.py", "--data", pack, "--out", gpu_out,
               "--deadline-s", str(size["gpu_deadline_s"]), "--batch", "512", "--lr", "1e-3", "--warmup", "500",
               "--valid-every", "1000", "--ema", "0.9995"]  # fmt: skip
        if args.smoke:  # the plumbing on the CPU: a few steps of a small batch in float32
            cmd += ["--max-steps", "2", "--batch", "2", "--valid-every", "1", "--warmup", "1", "--no-bf16"]
        run(cmd, log)
        model = work / "teacher_model"
        run([sys.executable, ROOT / "scripts" / "gpu_ld" / "import_run.py", "--weights", gpu_out / "best",
             "--like", like / "model", "--out", model], log)  # fmt: skip
    # the teacher as the shipped one sampled: DPM-Solver++ at flow shift 8, 6 guided steps at scale 3
    export(model, work / "teacher", log, "--steps", "6", "--guidance", "3", "--sampler", "dpmpp", "--sample-shift", "8")


def stage_export(work: Path, log: Path, args: argparse.Namespace) -> None:
    """The steps12 student with the tuned decoder as a trainable part, then fp16 + the pipeline settings."""
    student = work / "steps12_run" / "model"
    joined = work / "student_with_decoder"
    if joined.exists():
        shutil.rmtree(joined)
    shutil.copytree(student, joined)
    if (joined / "vae").exists():
        shutil.rmtree(joined / "vae")
    shutil.copytree(work / "decoder" / "vae", joined / "vae")
    meta = json.loads((joined / "config.json").read_text())
    meta["components"]["vae"] = {"path": "vae"}
    # the vocoder the default was measured with (models/vocoder_default; models/vocoder is the round trip's since
    # stop 41: docs/autoencoders.md, "The frame-rate buzz")
    meta["components"]["vocoder"] = {"shipped": "vocoder_default"}
    (joined / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    export(joined, args.out, log, "--settings", PIPELINE_SETTINGS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="the model directory to write (e.g. models/my_default)")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "reproduce", help="stages' outputs and logs")
    ap.add_argument("--teacher", choices=["gpu", "cpu"], default="gpu" if _has_cuda() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="every stage at toy size (checks the plumbing, ~2 min)")
    ap.add_argument("--only", choices=STAGES, help="run this stage alone (its inputs must exist)")
    ap.add_argument("--until", choices=STAGES, help="stop after this stage")
    args = ap.parse_args()
    if args.out.resolve() == (ROOT / "models" / "default").resolve():
        raise SystemExit("reproduce_default: --out models/default would overwrite the shipped default; pick another")
    if args.teacher == "gpu" and not args.smoke and not _has_cuda():
        raise SystemExit(
            "reproduce_default: --teacher gpu needs a CUDA GPU here (torch sees none); use --teacher cpu, or run "
            "the teacher stage on a GPU machine (docs/latent_diffusion.md, 'The default, second weights')"
        )
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    size = SMOKE if args.smoke else FULL
    chosen = STAGES[: STAGES.index(args.until) + 1] if args.until else STAGES
    if args.only:
        chosen = (args.only,)
    timings = json.loads((work / "timings.json").read_text()) if (work / "timings.json").exists() else {}
    for stage in chosen:
        done = work / f"{stage}.done"
        if done.exists() and not args.only:
            print(f"[{stage}] done before ({timings.get(stage, {}).get('seconds', '?')} s); skipped", flush=True)
            continue
        log = work / f"{stage}.log"
        start = time.time()
        print(f"[{stage}] started; log {log}", flush=True)
        if stage == "corpus":
            run([*soundsmith_cli(), "data", "synth", "--out", work / "corpus", "--hours", str(size["hours"]),
                 "--duration", "4", "--workers", "2", "--seed", "11"], log)  # fmt: skip
        elif stage == "shift":
            run([*soundsmith_cli(), "data", "shift", work / "corpus" / "manifest.jsonl", "--out",
                 work / "corpus_reg", "--with-source", "--every-shift"], log)  # fmt: skip
        elif stage == "teacher":
            stage_teacher(work, log, size, args)
        elif stage == "guidance":  # teacher (two-pass, 6 steps) -> one pass, exported at 12 steps
            run_dir = distill(work, log, size, "guidance", work / "teacher", "guidance", None)
            export(run_dir, work / "guided", log, "--steps", "12")
        elif stage == "steps8":  # the one-pass model's 16 steps into 8
            run_dir = distill(work, log, size, "steps8", work / "guided", "steps", 8)
            export(run_dir, work / "student8", log, "--steps", "12", "--sampler", "dpmpp", "--compute", "int8")
        elif stage == "steps12":  # the 12-step int8 model taught by itself at 24 steps
            distill(work, log, size, "steps12", work / "student8", "steps", 12)
        elif stage == "decoder":
            run([sys.executable, ROOT / "scripts" / "decoder_finetune.py", "--model", work / "teacher",
                 "--manifest", work / "corpus_reg" / "manifest.jsonl", "--out", work / "decoder",
                 *size["decoder"]], log)  # fmt: skip
        elif stage == "export":
            stage_export(work, log, args)
        seconds = round(time.time() - start, 1)
        timings[stage] = {"seconds": seconds, "smoke": args.smoke, "teacher": args.teacher}
        (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
        done.write_text(f"{seconds}\n")
        print(f"[{stage}] done in {seconds} s", flush=True)
    if "export" in chosen:
        print(f"wrote {args.out}: soundsmith generate \"three beeps\" --model {args.out}")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    main()
