"""Fine-tune a latent-diffusion model on a folder of one's own clips: LoRA adapters or all of the denoiser.

``finetune(DATA, RUN, FinetuneConfig(base="default", method="lora"))`` is what ``soundsmith finetune`` calls:

1. the base model (a shipped name, model or run directory) and its weights hash;
2. the clips of DATA, checked and captioned (``finetune/data.py``), a few held out for the validation loss;
3. prior preservation (on by default): clips the base generates for generic captions join the training rows
   (``finetune/prior.py``);
4. defaults from the data size (:func:`plan`), saved to ``RUN/finetune.json`` so that ``--resume`` rebuilds the same
   run;
5. the shared training loop (``train/engine.py``: progress with x real time and ETA, atomic checkpoints, exact
   resume), stopping at ``steps`` or after ``minutes``, validating on the held-out clips;
6. ``RUN/model``: the best checkpoint by validation loss, exported as a LoRA adapter (``adapter.json`` +
   ``adapter.safetensors``, naming the base and its weights hash) or, for ``full``, a complete model directory (the
   EMA weights). ``soundsmith.load(RUN)`` and ``soundsmith generate --model RUN`` use either.

``guidance`` (guidance distillation, Meng et al. 2023) trains the whole denoiser, given a guidance-scale input,
to predict in one pass what the frozen base predicts with classifier-free guidance in two (``uncond + w (cond -
uncond)``, ``w`` drawn from ``guidance_range``), on the clips noised at the timesteps the base's sampler visits;
the exported model takes twice the base's steps by default, at the same work per clip.

``steps`` (step distillation, after Salimans & Ho 2022's progressive distillation) needs a base that guides in
one pass (a ``guidance`` student): the whole denoiser learns to take in one first-order step what the frozen base
takes in two DPM-Solver++ steps, at ``student_steps`` steps (default half the base's); the exported model samples
with DPM-Solver++ 2M at those steps (measured better than the first-order ``dpmpp1`` step it learns): the base's
quality at half its work, when it works.

LoRA trains rank-``rank`` adapters on the denoiser's attention (``qkv``, ``proj``, ``q_cross``, ``kv_cross``,
``proj_cross``) and MLP projections (``mlp.0``, ``mlp.2``); everything else stays frozen. Full fine-tuning trains the
whole denoiser with an EMA of its weights. Training checkpoints hold only the trained tensors (the frozen base is
rebuilt from the base model, whose hash is checked on resume).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from soundsmith.errors import ConfigError, ModelError, TrainingError
from soundsmith.fileio import write_bytes_atomic
from soundsmith.finetune.data import MIN_SECONDS, clip_rows, collect_clips, hold_out, median_seconds
from soundsmith.finetune.prior import generate_prior, prior_captions
from soundsmith.train import checkpoint as ckpt
from soundsmith.train.engine import Trainer
from soundsmith.train.objectives.latent_diffusion import LatentDiffusionObjective

log = logging.getLogger("soundsmith.finetune")

METHODS = ("lora", "full", "guidance", "steps")
FAMILY = "latent_diffusion"
DEFAULT_TARGETS = ("qkv", "proj", "q_cross", "kv_cross", "proj_cross", "mlp.0", "mlp.2")
ADAPTER = "finetune"  # the adapter's name inside the model while it trains
SETTINGS_FILE = "finetune.json"
EPOCHS = 40  # default length: about this many passes over the training rows ...
MIN_STEPS, MAX_STEPS = 100, 2000  # ... within these bounds
MAX_BATCH = 8
MAX_PRIOR = 32
LR = {"lora": 1e-3, "full": 1e-4, "guidance": 5e-5, "steps": 5e-5}


@dataclass
class FinetuneConfig:
    """What to fine-tune and how; ``None`` fields are filled from the data by :func:`plan`.

    ``base``: shipped name, model or run directory of a latent-diffusion model. ``method``: ``lora``, ``full`` or
    ``guidance`` (distil the base's classifier-free guidance; ``guidance_range``: the scales it learns, drawn
    uniformly) or ``steps`` (distil two of a one-pass base's steps into one; ``student_steps``: the student's
    steps, default half the base's; ``guidance_range`` as above).
    ``rank``/``alpha`` (default ``rank``)/``targets``: the LoRA adapters. ``steps``, ``batch_size``, ``lr``,
    ``clip_seconds`` (training crop), ``ema_decay`` (full only by default), ``valid_every`` (also the checkpoint
    cadence). ``caption``: one caption for every clip; ``trigger``: appended to every caption. ``prior``: prior
    preservation with ``prior_clips`` generated clips. ``valid_fraction``: clips held out for the validation loss.
    """

    base: str = "default"
    method: str = "lora"
    rank: int = 8
    alpha: float | None = None
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    clip_seconds: float | None = None
    caption: str | None = None
    trigger: str | None = None
    prior: bool = True
    prior_clips: int | None = None
    ema_decay: float | None = None
    valid_fraction: float = 0.1
    valid_every: int | None = None
    seed: int = 0
    accelerator: str = "auto"
    guidance_range: list[float] = field(default_factory=lambda: [1.0, 5.0])
    student_steps: int | None = None

    def __post_init__(self) -> None:
        self.targets = list(self.targets)
        self.guidance_range = [float(v) for v in self.guidance_range]
        lo_hi = self.guidance_range
        if len(lo_hi) != 2 or not all(math.isfinite(v) for v in lo_hi) or not 0.0 <= lo_hi[0] < lo_hi[1]:
            raise ConfigError(f"guidance_range={lo_hi!r} must be [low, high] with 0 <= low < high")
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r} is unknown; use one of {', '.join(METHODS)}")
        for name, minimum in (
            ("rank", 1), ("steps", 1), ("batch_size", 1), ("prior_clips", 0), ("seed", 0), ("student_steps", 1)
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < minimum
            ):
                raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
        if self.valid_every is not None and (not isinstance(self.valid_every, int) or self.valid_every < 1):
            raise ConfigError(f"valid_every={self.valid_every!r} must be an integer >= 1")
        for name in ("alpha", "lr"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            ):
                raise ConfigError(f"{name}={value!r} must be a positive number")
        if self.clip_seconds is not None and not self.clip_seconds >= MIN_SECONDS:
            raise ConfigError(f"clip_seconds={self.clip_seconds!r} must be at least {MIN_SECONDS:g} s")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay!r} must be in [0, 1) (0 = off)")
        if not 0.0 <= self.valid_fraction <= 0.5:
            raise ConfigError(f"valid_fraction={self.valid_fraction!r} must be from 0 to 0.5")
        for name in ("caption", "trigger"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ConfigError(f"--{name} is empty; give some text or leave it out")
        if not self.targets:
            raise ConfigError("targets is empty; name the Linear layers to adapt (e.g. qkv, proj)")


@dataclass
class FinetuneResult:
    """What a fine-tune did: where its model is, how far it got, the best validation loss and when."""

    run_dir: Path
    model_dir: Path
    method: str
    step: int
    max_steps: int
    best_valid_loss: float | None
    best_step: int | None
    wall_seconds: float
    timed_out: bool
    model_bytes: int
    train_clips: int
    valid_clips: int
    prior_clips: int
    skipped: list[str]
    example_caption: str


def plan(cfg: FinetuneConfig, n_train: int, seconds: float, model_duration: float) -> FinetuneConfig:
    """``cfg`` with every empty field filled for ``n_train`` user clips of median length ``seconds``.

    Prior clips: half the user clips (4 to 32). Batch: up to 8 rows. Steps: ~40 passes over the training rows,
    100 to 2000. LR: 1e-3 (LoRA), 1e-4 (full). EMA (full): decay ``1 - 10 / steps`` within [0.9, 0.999].
    Crop: the median clip length, at most the base model's default duration. Validation and checkpoints: 10 a run.
    """
    values: dict[str, Any] = {}
    n_prior = (
        cfg.prior_clips if cfg.prior_clips is not None else min(MAX_PRIOR, max(4, math.ceil(n_train / 2)))
    )
    values["prior_clips"] = n_prior if cfg.prior else 0
    rows = n_train + values["prior_clips"]
    batch = cfg.batch_size or min(MAX_BATCH, rows)
    if batch > rows:
        raise ConfigError(f"batch_size={batch} is more than the {rows} training rows; lower it")
    values["batch_size"] = batch
    steps = cfg.steps or int(min(MAX_STEPS, max(MIN_STEPS, math.ceil(EPOCHS * rows / batch))))
    values["steps"] = steps
    values["lr"] = cfg.lr or LR[cfg.method]
    values["alpha"] = cfg.alpha or float(cfg.rank)
    if cfg.ema_decay is None:
        values["ema_decay"] = min(0.999, max(0.9, 1 - 10 / steps)) if cfg.method != "lora" else 0.0
    values["clip_seconds"] = cfg.clip_seconds or round(max(MIN_SECONDS, min(seconds, model_duration)), 2)
    values["valid_every"] = cfg.valid_every or max(1, steps // 10)
    return FinetuneConfig(**{**asdict(cfg), **values})


# --- the objective and the loop -------------------------------------------------------------------------------


class FinetuneObjective(LatentDiffusionObjective):
    """The latent-diffusion objective, with the validation loss made a function of the weights alone (fixed noise
    and timesteps per held-out batch, ``valid_draws`` of them, no dropped captions) so that checkpoints compare,
    and training checkpoints that hold only the trained tensors."""

    valid_draws = 4

    def trained_names(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """Only the trained tensors (the frozen base comes from the base model directory)."""
        state = super().state_dict(*args, **kwargs)
        keep = {kwargs.get("prefix", "") + name for name in self.trained_names()}
        for key in [k for k in state if k not in keep]:
            del state[key]
        return state

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:
        expected = self.trained_names()
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise TrainingError(
                f"the checkpoint holds other trained tensors (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                "resume with the same method, rank and targets"
            )
        return super().load_state_dict(state, strict=False, assign=assign)

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        key = ",".join(str(i) for i in batch.get("id", []))
        total = 0.0
        for k in range(self.valid_draws):
            gen = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:valid:{key}:{k}".encode()))
            total += float(self.denoising_loss(batch, gen)[0])
        return {"loss": total / self.valid_draws}


class GuidanceObjective(FinetuneObjective):
    """Guidance distillation: MSE between the student's one-pass prediction at scale ``w`` and the frozen
    ``teacher``'s guided one, ``uncond + w (cond - uncond)``, on latents noised at timesteps drawn as the sampler
    spends them (the sampling shift) and ``w ~ U(guidance_range)`` per row. The teacher is held outside the module
    tree: no checkpoint, optimizer or EMA sees it."""

    def __init__(self, model: Any, teacher: nn.Module, guidance_range: list[float], seed: int = 0) -> None:
        super().__init__(model, seed=seed)
        self.__dict__["teacher"] = teacher.requires_grad_(False).eval()
        self.guidance_range = (float(guidance_range[0]), float(guidance_range[1]))
        from soundsmith.sampling.diffusion import NoiseSchedule

        self.visit = NoiseSchedule(**model.config.schedule_kwargs(sampling=True))

    def denoising_loss(
        self, batch: dict[str, Any], gen: torch.Generator, drop_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = batch["latents"]
        n = x0.shape[0]
        # the flow target is the teacher's guided prediction instead
        x_t, t, _ = self.visit.training_pair(x0, gen)
        lo, hi = self.guidance_range
        w = (lo + (hi - lo) * torch.rand(n, generator=gen)).to(x0.device)
        now = t.float() / self.visit.num_train_timesteps
        text = (batch["text_tokens"], batch["text_mask"], batch["text_pooled"])
        teacher = self.teacher.to(x0.device)
        with torch.no_grad():  # the teacher's [cond, uncond] in one batch
            drop = torch.arange(2 * n, device=x0.device) >= n
            pair = tuple(torch.cat([v, v]) for v in (x_t, now, *text))
            both = teacher(*pair, drop)
            cond, uncond = both.float().chunk(2)
            target = uncond + w.view(-1, 1, 1, 1) * (cond - uncond)
        pred = self.model(x_t, now, *text, None, w)
        return torch.nn.functional.mse_loss(pred.float(), target), torch.zeros(n, dtype=torch.bool)


class StepObjective(FinetuneObjective):
    """Step distillation: the student's one-pass velocity at a point ``x_a`` of its own sampler's grid (``dpmpp1``
    at ``student_steps``: sigma ``s_a`` to the next, ``s_c``) regresses on the velocity that lands where the frozen
    ``teacher`` lands in two steps of DPM-Solver++ 2M over the grid of twice the steps (``s_a -> s_b -> s_c``; the
    first step first order, the second with the first's ``x0``, the last step to sigma 0 first order, as diffusers
    does): ``v* = (x_a - x_c) / (s_a - s_c)``. ``x_a`` is a clip's latent noised to ``s_a``; the grid point is drawn
    uniformly per row, and the guidance scale ``w ~ U(guidance_range)`` is given to both. Flow models only. The
    teacher is held outside the module tree."""

    def __init__(
        self, model: Any, teacher: nn.Module, student_steps: int, guidance_range: list[float], seed: int = 0
    ) -> None:
        super().__init__(model, seed=seed)
        from soundsmith.sampling.diffusion import DiffusionSampler, NoiseSchedule

        if model.config.prediction != "flow":
            raise ConfigError(
                f"step distillation runs flow models; this one predicts {model.config.prediction!r}"
            )
        self.__dict__["teacher"] = teacher.requires_grad_(False).eval()
        self.guidance_range = (float(guidance_range[0]), float(guidance_range[1]))
        schedule = NoiseSchedule(**model.config.schedule_kwargs(sampling=True))
        grid = DiffusionSampler("dpmpp", schedule)
        grid.set_steps(2 * student_steps)
        self.sigmas = grid.scheduler.sigmas.double().cpu()  # [2N + 1], the last 0
        # [2N]: the denoiser's time input, as the pipeline gives it
        self.times = grid.timesteps.double().cpu() / float(model.config.num_train_timesteps)
        student = DiffusionSampler("dpmpp1", schedule)
        student.set_steps(student_steps)
        if not torch.allclose(student.scheduler.sigmas.double().cpu(), self.sigmas[::2], atol=1e-6):
            raise ConfigError(
                f"the sampler's grid of {2 * student_steps} steps does not hold that of {student_steps}; "
                "choose another --student-steps"
            )
        self.student_steps = int(student_steps)

    @staticmethod
    def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-row values ``[B]`` (float64 on the CPU) as float32 on ``like``'s device, shaped to scale it."""
        return v.to(like.device, torch.float32).view((-1,) + (1,) * (like.ndim - 1))

    def _x0(self, x: torch.Tensor, k: torch.Tensor, text: tuple, w: torch.Tensor) -> torch.Tensor:
        """The teacher's ``x0`` at grid points ``k [B]`` (``x - sigma v``)."""
        v = self.teacher(x, self.times[k].to(x.device, torch.float32), *text, None, w).float()
        return x - self._rows(self.sigmas[k], x) * v

    @torch.no_grad()
    def teacher_two_steps(
        self, x_a: torch.Tensor, a: torch.Tensor, text: tuple, w: torch.Tensor
    ) -> torch.Tensor:
        """Where the teacher lands from ``x_a`` at its grid points ``a [B]`` after two steps of DPM-Solver++ 2M
        (the first first order; the second with the first's ``x0``, or first order into sigma 0): float32."""
        s_a, s_b, s_c = (self.sigmas[a + i] for i in range(3))  # float64 [B]
        self.teacher.to(x_a.device)
        d_a = self._x0(x_a, a, text, w)
        keep = self._rows(s_b / s_a, x_a)
        x_b = keep * x_a + (1.0 - keep) * d_a
        d_b = self._x0(x_b, a + 1, text, w)

        def lam(s: torch.Tensor) -> torch.Tensor:  # log(alpha / sigma)
            return torch.log((1.0 - s) / s)

        last = s_c <= 0
        safe_c = torch.where(last, torch.full_like(s_c, 0.5), s_c)
        r = (lam(s_b) - lam(s_a)) / (lam(safe_c) - lam(s_b))
        c1 = torch.where(last, torch.zeros_like(r), 1.0 / (2.0 * r))
        d = self._rows(1.0 + c1, x_a) * d_b - self._rows(c1, x_a) * d_a
        # (sigma_c / sigma_b) x_b + (alpha_c - alpha_b sigma_c / sigma_b) D, alpha = 1 - sigma
        return self._rows(s_c / s_b, x_a) * x_b + self._rows((1.0 - s_c) - (1.0 - s_b) * s_c / s_b, x_a) * d

    def student_pair(
        self, x0: torch.Tensor, noise: torch.Tensor, a: torch.Tensor, text: tuple, w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, target)``, float32: the student's velocity at ``x0`` noised by ``noise`` to the grid
        points ``a [B]``, and the velocity that lands where the teacher's two steps land."""
        s_a, s_c = self.sigmas[a], self.sigmas[a + 2]  # float64 [B]
        x_a = self._rows(1.0 - s_a, x0) * x0 + self._rows(s_a, x0) * noise
        x_c = self.teacher_two_steps(x_a, a, text, w)
        target = (x_a.float() - x_c) / self._rows(s_a - s_c, x0)
        pred = self.model(x_a, self.times[a].to(x0.device, torch.float32), *text, None, w)
        return pred.float(), target

    def denoising_loss(
        self, batch: dict[str, Any], gen: torch.Generator, drop_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = batch["latents"]
        n, dev = x0.shape[0], x0.device
        a = 2 * torch.randint(0, self.student_steps, (n,), generator=gen)  # the student's grid points
        noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(dev)
        lo, hi = self.guidance_range
        w = (lo + (hi - lo) * torch.rand(n, generator=gen)).to(dev)
        text = (batch["text_tokens"], batch["text_mask"], batch["text_pooled"])
        pred, target = self.student_pair(x0, noise, a, text, w)
        return torch.nn.functional.mse_loss(pred, target), torch.zeros(n, dtype=torch.bool)


class _TimeUp(Exception):
    """The time budget is spent (raised after a checkpoint; caught by :meth:`FinetuneTrainer.fit`)."""


class FinetuneTrainer(Trainer):
    """The shared loop with a wall-clock budget (``deadline``, ``time.monotonic()``) and the fine-tune's own
    inference export (``export(model, extra)``: an adapter or a model directory) at every checkpoint."""

    def __init__(
        self,
        *args: Any,
        export: Callable[[nn.Module, dict[str, Any]], None],
        deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.export = export
        self.deadline = deadline
        self.timed_out = False

    def fit(self, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            return super().fit(resume=resume, stop_at=stop_at)
        except _TimeUp:
            return {
                "step": self.step,
                "train_loss": self.last_train.get("loss"),
                "valid_loss": self.last_valid.get("loss"),
                "best_valid_loss": self.best,
                "wall_seconds": time.perf_counter() - t0,
            }

    def _periodic(self, stop: int) -> None:
        if self.deadline is not None and self.step < stop and time.monotonic() >= self.deadline:
            self.timed_out = True
            cfg = self.cfg
            if self.valid_set is not None and not (cfg.valid_every and self.step % cfg.valid_every == 0):
                self._run_validation()
            super()._periodic(self.step)  # step == stop: validates on its cadence and checkpoints
            log.info("time budget spent at step %d of %d; stopping", self.step, cfg.max_steps)
            raise _TimeUp
        super()._periodic(stop)

    def export_inference(self, model: nn.Module, extra: dict[str, Any]) -> None:
        """The fine-tune's own export (an adapter or a model directory) instead of the registry's."""
        self.export(model, {"step": extra["step"], "valid_loss": self.last_valid.get("loss")})


# --- the run --------------------------------------------------------------------------------------------------


def _base_ref(base: str, base_dir: Path) -> str:
    """How the adapter names its base: the shipped name as given, else the directory's absolute path."""
    from soundsmith.models.registry import shipped_models

    if not Path(base).exists() and base in shipped_models():
        return base
    return str(base_dir.resolve())


def _resume_config(saved: FinetuneConfig, given: FinetuneConfig, out: Path) -> FinetuneConfig:
    """The saved config, with ``steps`` from ``given`` when set; any other field set otherwise is an error."""
    default = FinetuneConfig()
    values = asdict(saved)
    for f in fields(FinetuneConfig):
        value = getattr(given, f.name)
        if value == getattr(default, f.name) or value == values[f.name]:
            continue
        if f.name == "steps":
            values["steps"] = value
            continue
        raise ConfigError(
            f"{out} was started with {f.name}={values[f.name]!r}, not {value!r}; resume without changing it "
            "(only the steps may change) or fine-tune into another --out"
        )
    return FinetuneConfig(**values)


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*") if p.is_file()) if directory.is_dir() else 0


def finetune(
    data: str | Path,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    resume: bool = False,
    minutes: float | None = None,
    stop_at: int | None = None,
) -> FinetuneResult:
    """Fine-tune ``config.base`` on the clips in ``data`` into the run directory ``out`` (see the module docstring).

    ``resume``: continue the run in ``out`` exactly where its last checkpoint left it (its saved settings; only
    ``config.steps`` may change). ``minutes``: stop after this much wall time (a checkpoint is written first).
    ``stop_at``: stop after that step (as a kill would, but with a checkpoint), for tests and scripted runs.
    """
    from soundsmith.data import ClipDataset, collate_clips, read_manifest, write_manifest
    from soundsmith.data.dataset import DataConfig
    from soundsmith.models.registry import load_model, read_model_config, resolve_model_dir, weights_sha256
    from soundsmith.nn import lora
    from soundsmith.pipelines.base import ModelSource
    from soundsmith.pipelines.loader import pipeline_for
    from soundsmith.train.config import TrainConfig

    started = time.monotonic()
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise ConfigError(f"--minutes {minutes!r} must be a positive number")
    given = config or FinetuneConfig()
    out, data = Path(out), Path(data)
    settings_path = out / SETTINGS_FILE
    manifest_path = out / "data" / "manifest.jsonl"
    if resume and not settings_path.is_file():
        log.warning("resume: no %s in %s; starting a fresh fine-tune", SETTINGS_FILE, out)
        resume = False
    if not resume and (settings_path.exists() or ckpt.list_checkpoints(out / "checkpoints")):
        raise ConfigError(
            f"{out} already holds a fine-tune; continue it with --resume or choose another --out"
        )

    # 1. the base model
    if resume:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        cfg = _resume_config(FinetuneConfig(**settings["config"]), given, out)
        if str(data.resolve()) != settings["data"]:
            raise ConfigError(
                f"{out} fine-tunes on {settings['data']}, not {data}; resume with the same DATA"
            )
    else:
        cfg = given
    base_dir = resolve_model_dir(cfg.base)
    family = read_model_config(base_dir)["family"]
    if family != FAMILY:
        raise ModelError(f"{cfg.base}: a {family!r} model; soundsmith finetune fine-tunes {FAMILY} models")
    base_sha = weights_sha256(base_dir)
    if resume and base_sha != settings["base_sha256"]:
        raise ModelError(
            f"the base {cfg.base!r} changed since {out} started (weights sha256 {base_sha[:12]}..., was "
            f"{settings['base_sha256'][:12]}...); resume on the same base or start a new run"
        )
    model = load_model(base_dir)
    if cfg.method == "steps" and not model.config.denoiser.guidance_embed:
        raise ConfigError(
            f"{cfg.base} guides in two passes; distil its guidance first (--method guidance), then its steps"
        )
    if cfg.method == "guidance":
        if model.config.denoiser.guidance_embed:
            raise ConfigError(
                f"{cfg.base} already guides in one pass (its guidance is distilled); distil from the two-branch "
                "model it came from (--base)"
            )
        if model.config.guidance_rescale > 0:
            raise ConfigError(
                f"{cfg.base} rescales its guidance (guidance_rescale={model.config.guidance_rescale:g}), which one "
                "pass cannot; set guidance_rescale 0 in its config.json before distilling it"
            )

    # 2.-4. clips, prior clips and the plan (a fresh run), or the saved ones (resume)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        check = collect_clips(data, out / "data", cfg.caption, cfg.trigger, exclude=out)
        if not check.clips:
            raise ConfigError(
                f"no usable clip in {data} ({check.summary()}); add clips of at least {MIN_SECONDS:g} s"
            )
        train, valid = hold_out(check.clips, cfg.valid_fraction, cfg.seed)
        cfg = plan(cfg, len(train), median_seconds(check.clips), float(model.config.duration))
        rows = clip_rows(train, "train") + clip_rows(valid, "valid")
        source = "off"
        if cfg.prior_clips:
            captions, source = prior_captions(base_dir)
            pipe = pipeline_for(model, FAMILY, source=ModelSource(cfg.base, str(base_dir), base_sha))
            log.info(
                "prior preservation: generating %d clips with the base model (%s)", cfg.prior_clips, source
            )
            rows += generate_prior(pipe, captions, cfg.prior_clips, cfg.clip_seconds, out / "prior", cfg.seed)
        write_manifest(manifest_path, rows)
        settings = {
            "config": asdict(cfg),
            "base": _base_ref(cfg.base, base_dir),
            "base_dir": str(base_dir.resolve()),
            "base_sha256": base_sha,
            "data": str(data.resolve()),
            "clips": {"train": len(train), "valid": len(valid), "prior": cfg.prior_clips},
            "prior_source": source,
            "skipped": [str(s) for s in check.skipped],
            "example_caption": check.clips[0].captions[0],
        }
        write_bytes_atomic(settings_path, (json.dumps(settings, indent=2) + "\n").encode())
    manifest = read_manifest(manifest_path)
    assert cfg.steps is not None and cfg.batch_size is not None and cfg.lr is not None  # filled by plan()

    # the trained part: LoRA adapters on the denoiser, or the whole denoiser
    model.requires_grad_(False)
    teacher = None  # guidance distillation: the frozen base denoiser
    if cfg.method == "lora":
        layers = lora.add_lora(model.denoiser, ADAPTER, cfg.targets, cfg.rank, cfg.alpha, seed=cfg.seed)
        what = f"LoRA rank {cfg.rank} on {len(layers)} Linear layers"
    else:
        if cfg.method in ("guidance", "steps"):
            teacher = copy.deepcopy(model.denoiser)
        if cfg.method == "guidance":
            model.denoiser.add_guidance_input()
            # one pass a step: twice the steps for the same work
            model.config.steps = 2 * int(model.config.steps)
        if cfg.method == "steps":
            student_steps = cfg.student_steps or max(1, int(model.config.steps) // 2)
            # DPM-Solver++'s grid; 2M read better than the first-order step it learns (docs/latent_diffusion.md)
            model.config.steps, model.config.sampler = student_steps, "dpmpp"
        model.denoiser.requires_grad_(True)
        what = f"the whole denoiser (EMA {cfg.ema_decay or 0.0:.3g})"
        if cfg.method == "guidance":
            what += f", distilling guidance {cfg.guidance_range[0]:g}-{cfg.guidance_range[1]:g}"
        if cfg.method == "steps":
            what += f", distilling {2 * model.config.steps} steps into {model.config.steps}"
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def export(net: nn.Module, extra: dict[str, Any]) -> None:
        info = {
            "family": FAMILY,
            "base": settings["base"],
            "base_dir": settings["base_dir"],
            "base_sha256": settings["base_sha256"],
            "method": cfg.method,
            "trigger": cfg.trigger,
            "example_caption": settings["example_caption"],
            **extra,
        }
        if cfg.method == "lora":
            targets = {"target": "denoiser", "rank": cfg.rank, "alpha": cfg.alpha, "targets": cfg.targets}
            lora.save_adapter(out / "model", lora.lora_state(net.denoiser, ADAPTER), {**info, **targets})
        else:
            from soundsmith.models.registry import save_model

            save_model(net, out / "model", extra={"finetune": info}, family=FAMILY)

    # 5. the shared loop
    data_cfg = DataConfig(
        sample_rate=int(model.config.sample_rate), clip_seconds=cfg.clip_seconds, seed=cfg.seed
    )
    train_set = ClipDataset(manifest, data_cfg, split="train", random_crop=True)
    valid_set = (
        ClipDataset(manifest, data_cfg, split="valid", random_crop=False) if manifest.split("valid") else None
    )
    train_cfg = TrainConfig(
        max_steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=min(50, cfg.steps // 10),
        ema_decay=cfg.ema_decay or 0.0,
        valid_every=cfg.valid_every or 0,
        checkpoint_every=cfg.valid_every or 0,
        sample_every=0,
        keep_last=2,
        log_every=max(1, min(10, cfg.steps // 20)),
        seed=cfg.seed,
        accelerator=cfg.accelerator,
    )
    if cfg.method == "steps":
        objective: FinetuneObjective = StepObjective(
            model, teacher, int(model.config.steps), cfg.guidance_range, seed=cfg.seed
        )
    elif cfg.method == "guidance":
        objective = GuidanceObjective(model, teacher, cfg.guidance_range, seed=cfg.seed)
    else:
        objective = FinetuneObjective(model, seed=cfg.seed)
    trainer = FinetuneTrainer(
        objective,
        train_set,
        valid_set,
        train_cfg,
        out,
        run_config=settings,
        collate_fn=collate_clips,
        export=export,
        deadline=started + 60 * minutes if minutes is not None else None,
    )
    clips = settings["clips"]
    log.info(
        "fine-tuning %s: %s (%.2fM trained parameters) on %d clips + %d prior, %d held out; %d steps, batch %d, "
        "lr %g, %.2f s crops%s",
        cfg.base, what, trained / 1e6, clips["train"], clips["prior"], clips["valid"], cfg.steps, cfg.batch_size,
        cfg.lr, cfg.clip_seconds, f"; stops after {minutes:g} min" if minutes is not None else "",
    )  # fmt: skip
    result = trainer.fit(resume=resume, stop_at=stop_at)

    # 6. the best checkpoint (by validation loss) becomes RUN/model
    best_step = None
    best_path = out / "checkpoints" / "best.ckpt"
    if valid_set is not None and best_path.is_file():
        state = ckpt.load_checkpoint(best_path)
        objective.load_state_dict(state["objective"])
        net: nn.Module = objective.model
        if state.get("ema") is not None:
            from soundsmith.train.ema import EMA

            ema = EMA(net, cfg.ema_decay or 0.0)
            ema.load_state_dict(state["ema"])
            net = ema.averaged_model(net)
        best_step = int(state["step"])
        export(net, {"step": best_step, "valid_loss": state.get("best")})
    return FinetuneResult(
        run_dir=out,
        model_dir=out / "model",
        method=cfg.method,
        step=int(result["step"]),
        max_steps=cfg.steps,
        best_valid_loss=result.get("best_valid_loss"),
        best_step=best_step,
        wall_seconds=time.monotonic() - started,
        timed_out=trainer.timed_out,
        model_bytes=_dir_bytes(out / "model"),
        train_clips=clips["train"],
        valid_clips=clips["valid"],
        prior_clips=clips["prior"],
        skipped=list(settings.get("skipped", [])),
        example_caption=settings["example_caption"],
    )
