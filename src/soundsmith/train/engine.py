"""The training loop shared by every model family, built on Lightning Fabric.

One CPU, one GPU, DDP or FSDP over several GPUs/nodes and bf16 mixed precision all come from Fabric, chosen
by :class:`TrainConfig`. The data order is ours: a deterministic permutation per ``(seed, epoch)`` cut into
global batches, each shared out by rank and micro-batch, so that a run resumed after any kill replays exactly
the batches it has not yet consumed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import MethodType
from typing import Any

import torch
from lightning_fabric import Fabric
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from soundsmith.errors import ConfigError, TrainingError
from soundsmith.train import checkpoint as ckpt
from soundsmith.train.config import TrainConfig
from soundsmith.train.ema import EMA
from soundsmith.train.loader import ShardSampler, StepBatchSampler, train_loader, validation_means
from soundsmith.train.monitor import Monitor, TrainWindow
from soundsmith.train.objectives.base import Objective
from soundsmith.train.optimizers import OptimizerSpec, as_specs
from soundsmith.train.schedules import build_scheduler, reconfigure, set_lr_scale

log = logging.getLogger(__name__)

_FORWARD_METHODS = ("prepare_batch", "losses", "validate", "sample")

__all__ = ["OptimizerSpec", "ShardSampler", "StepBatchSampler", "Trainer"]  # the samplers: old import path


class Trainer:
    """Train ``objective`` on ``train_set``; write everything under ``out_dir``.

    Items of the datasets are dicts (``audio [T]``, ``caption``, ...) batched by ``collate_fn`` (default:
    ``train_set.collate_fn`` if it has one, else torch's ``default_collate``; pass ``collate_clips`` for
    ``ClipDataset``). ``train_set.set_epoch(epoch)`` is called when present and ``train_set.bad_files`` is logged.

    Layout: ``checkpoints/step-XXXXXXX.ckpt`` (last ``keep_last``) + ``checkpoints/best.ckpt``, ``model/``
    (inference export of the EMA or raw model), ``metrics.jsonl``, ``tb/``, ``loss.png``, ``samples/``,
    ``train_config.json``.

    ``num_workers``: DataLoader worker processes (``data.num_workers`` of a run config).
    """

    def __init__(
        self,
        objective: Objective,
        train_set: Dataset,
        valid_set: Dataset | None,
        cfg: TrainConfig,
        out_dir: str | Path,
        run_config: dict[str, Any] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        num_workers: int = 0,
    ) -> None:
        self.objective = objective
        self.train_set = train_set
        self.valid_set = valid_set
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.run_config = run_config or {}
        self.collate_fn = collate_fn or getattr(train_set, "collate_fn", None) or default_collate
        self.num_workers = int(num_workers)
        if cfg.strategy == "fsdp" and cfg.ema_decay > 0:
            raise ConfigError(
                "train.ema_decay > 0 is not supported with strategy 'fsdp'; use 'ddp' or ema_decay: 0"
            )
        self.fabric = Fabric(
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            strategy=self._strategy(),
            precision=cfg.precision,
        )

    def _strategy(self) -> Any:
        if self.cfg.strategy == "ddp":
            from lightning_fabric.strategies import DDPStrategy

            return DDPStrategy(
                find_unused_parameters=bool(getattr(self.objective, "find_unused_parameters", True))
            )
        return self.cfg.strategy

    # --- setup -------------------------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg, fabric = self.cfg, self.fabric
        if not getattr(fabric, "_launched", False):
            fabric.launch()
        self.rank, self.world = fabric.global_rank, fabric.world_size
        if cfg.batch_size % (self.world * cfg.grad_accum):
            raise ConfigError(
                f"train.batch_size {cfg.batch_size} must be a multiple of grad_accum x processes "
                f"({cfg.grad_accum} x {self.world}); change batch_size or grad_accum"
            )
        self.micro = cfg.batch_size // (self.world * cfg.grad_accum)
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(self.train_set)} items, fewer than train.batch_size "
                f"{cfg.batch_size}; lower batch_size or add data"
            )
        ckpt.seed_process(cfg.seed, self.rank)
        self.module = fabric.setup_module(self.objective)
        for name in _FORWARD_METHODS:
            if isinstance(getattr(self.objective, name, None), MethodType):  # not e.g. a patched-in function
                self.module.mark_forward_method(name)
        self.specs = as_specs(self.objective.configure_optimizers(cfg), type(self.objective).__name__)
        self.optimizers = [s.optimizer for s in self.specs]  # raw optimizers (state lives here)
        self.objective.num_optimizers = len(self.optimizers)
        fab_opts = fabric.setup_optimizers(*self.optimizers)
        self.fab_opts = list(fab_opts) if isinstance(fab_opts, Sequence) else [fab_opts]
        self.schedulers = [build_scheduler(s.optimizer, cfg, self.steps_per_epoch, s) for s in self.specs]
        self.ema = EMA(self.objective.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.step = 0
        self.nan = {"consecutive": 0, "skipped": 0, "restores": 0}
        # per optimizer index: [running mean of its loss over good updates, number of good updates] (spike guard)
        self.loss_mean: dict[str, list[float]] = {}
        self._bad_seen: set[str] = set()
        self.lr_scale = 1.0
        self.best: float | None = None
        self.last_saved_step = -1
        self.monitor = Monitor(self.out_dir, enabled=self.rank == 0)
        self.window = TrainWindow()

    # --- public ------------------------------------------------------------------------------------------

    def fit(self, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``cfg.max_steps`` (or stop early at step ``stop_at``, schedule unchanged); final metrics.

        ``resume=True`` continues from the newest readable checkpoint in ``out_dir/checkpoints`` (model,
        optimizers, schedulers, EMA, RNG states, data position, NaN counters, best metric). With no
        checkpoint there it starts fresh and logs a warning (so a job killed before its first checkpoint can
        always be relaunched with ``--resume``). ``resume=False`` on an out_dir that already has checkpoints
        raises ConfigError rather than mixing two runs.
        """
        cfg = self.cfg
        self._setup()
        existing = ckpt.list_checkpoints(self.ckpt_dir)
        if existing and not resume:
            raise ConfigError(
                f"{self.out_dir} already holds checkpoints ({existing[-1].name}); resume with --resume "
                "or choose another output directory"
            )
        if self.rank == 0:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temp_files(self.ckpt_dir)
        if resume:
            found = ckpt.latest_checkpoint(self.ckpt_dir)
            if found is None:
                log.warning("resume: no readable checkpoint in %s; starting a fresh run", self.ckpt_dir)
            else:
                log.info("resuming from %s (step %d)", found[0], found[1]["step"])
                self._load_state(found[1], nan_restore=False)
                self.last_saved_step = self.step
        if self.rank == 0:
            info = {"train": asdict(cfg), "run": self.run_config, "world_size": self.world}
            (self.out_dir / "train_config.json").write_text(json.dumps(info, indent=2, default=str))
        stop = min(cfg.max_steps, stop_at if stop_at is not None else cfg.max_steps)
        self.module.train()
        t_start = time.perf_counter()
        self.window.reset()
        self.last_valid: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        self._pbar = tqdm(
            total=cfg.max_steps, initial=self.step, disable=self.rank != 0, desc="train", dynamic_ncols=True
        )
        try:
            while self.step < stop:
                self._run_epoch(stop)
            self._finish()
        finally:
            self._pbar.close()
            self.monitor.close()
        return {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "train_loss": self.last_train.get("loss"),
            "valid_loss": self.last_valid.get("loss"),
            "best_valid_loss": self.best,
            "nan_skipped": self.nan["skipped"],
            "nan_restores": self.nan["restores"],
            "bad_files": self._bad_files(),
            "wall_seconds": time.perf_counter() - t_start,
        }

    # --- loop --------------------------------------------------------------------------------------------

    def _run_epoch(self, stop: int) -> None:
        cfg = self.cfg
        epoch, position = divmod(self.step, self.steps_per_epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        batches = iter(self._train_loader(epoch, position))
        for _ in range(position, self.steps_per_epoch):
            if self.step >= stop:
                return
            micro_batches = [next(batches) for _ in range(cfg.grad_accum)]
            ok, metrics = self._train_step(micro_batches)
            self.step += 1
            self._pbar.update(1)
            if ok:
                self.nan["consecutive"] = 0
                self._window_add(metrics, micro_batches)
            else:
                self.nan["consecutive"] += 1
                self.nan["skipped"] += 1
                log.warning(
                    "step %d: non-finite loss or gradient, or a loss spike (train.spike_factor); update skipped",
                    self.step,
                )
                if self.nan["consecutive"] >= cfg.nan_patience:
                    self._recover_from_nan()
                    return  # the data position moved: start a new loader
            self._periodic(stop)

    def _train_step(self, micro_batches: list[dict[str, Any]]) -> tuple[bool, dict[str, float]]:
        """Forward/backward over the micro-batches and one update per optimizer active at this step, in order.

        Before the first ``losses`` call the objective's ``global_step`` (0-based index of this step) and
        ``active_optimizers`` (indices stepping now) are set, e.g. for a generator loss whose adversarial term
        starts with its discriminator.
        """
        cfg, fabric, module = self.cfg, self.fabric, self.module
        accum = cfg.grad_accum
        active = [i for i, spec in enumerate(self.specs) if spec.active(self.step)]
        self.objective.global_step = self.step
        self.objective.active_optimizers = tuple(active)
        with torch.no_grad():
            prepared = [module.prepare_batch(b) for b in micro_batches]
        all_ok, metrics = True, {}
        for i in active:
            spec, opt, raw, sched = self.specs[i], self.fab_opts[i], self.optimizers[i], self.schedulers[i]
            raw.zero_grad(set_to_none=True)
            sums: dict[str, torch.Tensor] = {}
            for k, batch in enumerate(prepared):
                with fabric.no_backward_sync(module, enabled=k < accum - 1):
                    out = module.losses(batch, i)
                    if "loss" not in out:
                        raise TrainingError(
                            f"{type(self.objective).__name__}.losses returned no 'loss' key: {list(out)}"
                        )
                    fabric.backward(out["loss"] / accum)
                for key, value in out.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().float().mean() / accum
            clip = cfg.clip_grad_norm if spec.clip_grad_norm is None else spec.clip_grad_norm
            norm = fabric.clip_gradients(
                module, opt, max_norm=clip if clip > 0 else float("inf"), error_if_nonfinite=False
            )
            bad = (~torch.isfinite(sums["loss"])).float() + self._spiking(i, sums["loss"])
            if norm is not None:
                bad = bad + (~torch.isfinite(norm.to(bad.device))).float()
            if self.world > 1:  # every rank must take the same decision
                bad = fabric.all_reduce(bad, reduce_op="sum")
            if float(bad) > 0:
                raw.zero_grad(set_to_none=True)
                all_ok = False
                continue
            opt.step()
            sched.step()
            self._track_loss(i, float(sums["loss"]))
            suffix = "" if i == 0 else f"_{i}"
            metrics.update({key + suffix: float(v) for key, v in sums.items()})
            if norm is not None:
                metrics["grad_norm" + suffix] = float(norm)
        if all_ok and active and self.ema is not None:
            self.ema.update(self.objective.model)
        return all_ok, metrics

    def _periodic(self, stop: int) -> None:
        cfg, step = self.cfg, self.step
        if step % cfg.log_every == 0:
            self._log_train()
        if self.valid_set is not None and cfg.valid_every and step % cfg.valid_every == 0:
            self._run_validation()
        if cfg.sample_every and step % cfg.sample_every == 0:
            self._run_sampling()
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == stop:
            self._save()

    def _finish(self) -> None:
        if self.valid_set is not None and self.last_valid.get("_step") != self.step and self.step > 0:
            self._run_validation()
        if self.last_saved_step != self.step:
            self._save()
        self.monitor.plot_losses()

    # --- NaN and loss-spike guard ------------------------------------------------------------------------

    SPIKE_WARMUP = 50  # good updates of an optimizer before its loss spikes are judged
    SPIKE_DECAY = 0.98  # running mean: mean <- decay * mean + (1 - decay) * loss

    def _spiking(self, index: int, loss: torch.Tensor) -> torch.Tensor:
        """1.0 when ``loss`` exceeds ``train.spike_factor`` x the running mean of optimizer ``index``'s loss
        (judged after :attr:`SPIKE_WARMUP` good updates and only while that mean is positive), else 0.0."""
        mean, seen = self.loss_mean.get(str(index), (0.0, 0))
        factor = self.cfg.spike_factor
        spike = factor > 0 and seen >= self.SPIKE_WARMUP and mean > 0 and float(loss) > factor * mean
        return torch.tensor(float(spike), device=loss.device)

    def _track_loss(self, index: int, loss: float) -> None:
        mean, seen = self.loss_mean.get(str(index), (0.0, 0))
        mean = loss if seen == 0 else self.SPIKE_DECAY * mean + (1 - self.SPIKE_DECAY) * loss
        self.loss_mean[str(index)] = [mean, seen + 1]

    def _recover_from_nan(self) -> None:
        cfg = self.cfg
        if self.nan["restores"] >= cfg.max_nan_restores:
            raise TrainingError(
                f"training stopped at step {self.step}: the loss or gradient norm was NaN/Inf (or the loss "
                f"spiked above train.spike_factor x its running mean) for {cfg.nan_patience} steps in a row, again after {self.nan['restores']} restore(s) with the LR "
                f"lowered to x{self.lr_scale:g}. Try a lower train.lr, train.clip_grad_norm (e.g. 1.0), "
                f"precision '32-true', a longer warmup, or check the data (bad files so far: {self._bad_files()})"
            )
        self.nan["restores"] += 1
        self.lr_scale *= cfg.nan_lr_factor
        self.nan["consecutive"] = 0
        found = ckpt.latest_checkpoint(self.ckpt_dir)
        if found is not None:
            self._load_state(found[1], nan_restore=True)
            log.warning("NaN guard: restored %s, LR x%g", found[0].name, self.lr_scale)
        else:
            log.warning("NaN guard: no checkpoint yet; keeping the weights, LR x%g", self.lr_scale)
        for sched in self.schedulers:
            set_lr_scale(sched, self.lr_scale)
        self._pbar.n = self.step
        self._pbar.refresh()
        self.window.reset()

    # --- validation, sampling, logging ---------------------------------------------------------------------

    def _run_validation(self) -> dict[str, float]:
        result = validation_means(
            self.fabric, self.module, self.valid_set, self.micro, self.collate_fn, self.num_workers
        )
        self.last_valid = {**result, "_step": self.step}
        self.monitor.log(self.step, {f"valid/{k}": v for k, v in result.items()})
        loss = result.get("loss")
        if loss is not None and math.isfinite(loss) and (self.best is None or loss < self.best):
            self.best = loss
            state = self._state()
            if self.rank == 0:
                ckpt.atomic_save(state, self.ckpt_dir / "best.ckpt")
            self.fabric.barrier()
        return result

    def _run_sampling(self) -> None:
        source = self.valid_set if self.valid_set is not None else self.train_set
        n = min(self.micro, len(source), 4)
        batch = self.fabric.to_device(self.collate_fn([source[i] for i in range(n)]))
        # listen to what gets exported: the EMA weights when EMA is on (swapped in, then the raw ones restored)
        model = self.objective.model
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()} if self.ema is not None else None
        if self.ema is not None:
            self.ema.copy_to(model)
        self.module.eval()
        try:
            with torch.no_grad():
                audio = self.module.sample(self.module.prepare_batch(batch))
        finally:
            if raw is not None:
                model.load_state_dict(raw)
            self.module.train()
        if audio is not None:
            self.monitor.log_audio(self.step, audio, self.objective.sample_rate)

    def _window_add(self, metrics: dict[str, float], micro_batches: list[dict[str, Any]]) -> None:
        audio_s = 0.0
        for b in micro_batches:
            if isinstance(b, dict) and b.get("skipped"):  # bad files met inside DataLoader workers
                self._bad_seen.update(b["skipped"])
            audio = b.get("audio") if isinstance(b, dict) else None
            if isinstance(audio, torch.Tensor) and audio.ndim >= 1:
                audio_s += audio.numel() / self.objective.sample_rate * self.world  # same size on every rank
        self.window.add(metrics, self.cfg.batch_size, audio_s)

    def _log_train(self) -> None:
        means = self.window.means()
        samples_per_s, x_realtime = self.window.rates()
        if self.world > 1 and means:
            keys = sorted(means)
            vals = self.fabric.all_reduce(
                torch.tensor([means[k] for k in keys], device=self.fabric.device), reduce_op="mean"
            )
            means = dict(zip(keys, vals.cpu().tolist()))
        lr = self.schedulers[0].get_last_lr()[0]
        row = {f"train/{k}": v for k, v in means.items()}
        row.update({f"lr_{i}": sched.get_last_lr()[0] for i, sched in enumerate(self.schedulers) if i})
        row.update(
            lr=lr,
            epoch=self.step // self.steps_per_epoch,
            samples_per_s=samples_per_s,
            x_realtime=x_realtime,
            nan_skipped=self.nan["skipped"],
            nan_restores=self.nan["restores"],
            bad_files=self._bad_files(),
        )
        self.last_train = means
        self.monitor.log(self.step, row)
        if "loss" in means:
            self._pbar.set_postfix(
                loss=f"{means['loss']:.4g}",
                lr=f"{lr:.2e}",
                sps=f"{row['samples_per_s']:.1f}",
                xRT=f"{row['x_realtime']:.1f}",
            )
        self.window.reset()

    def _bad_files(self) -> int:
        """Bad files met so far: the dataset's own record (main process) united with those batches reported
        from DataLoader workers (``batch["skipped"]``), whose dataset copies the main process never sees."""
        value = getattr(self.train_set, "bad_files", 0)
        if isinstance(value, (list, tuple, set, dict)):
            return len(set(value) | self._bad_seen)
        return max(int(value or 0), len(self._bad_seen))

    # --- data ----------------------------------------------------------------------------------------------

    def _train_loader(self, epoch: int, position: int) -> DataLoader:
        cfg = self.cfg
        return train_loader(
            self.fabric, self.train_set, cfg.batch_size, cfg.grad_accum, cfg.seed, epoch, position,
            self.collate_fn, self.num_workers,
        )  # fmt: skip

    # --- checkpoints ---------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """Everything a resume needs, as plain containers (called on every rank: gathers RNG states)."""
        rng = ckpt.capture_rng_state()
        if self.world > 1:
            gathered = self.fabric.all_gather(rng)  # each [world, ...]
            rng_per_rank = [{k: v[r].cpu() for k, v in gathered.items()} for r in range(self.world)]
        else:
            rng_per_rank = [rng]
        epoch, position = divmod(self.step, self.steps_per_epoch)
        return {
            "version": ckpt.CHECKPOINT_VERSION,
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": position,
            "steps_per_epoch": self.steps_per_epoch,
            "objective": self.objective.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_per_rank,
            "nan": dict(self.nan),
            "loss_mean": {k: list(v) for k, v in self.loss_mean.items()},
            "lr_scale": self.lr_scale,
            "best": self.best,
            "world_size": self.world,
            "train_config": asdict(self.cfg),
            "run_config": self.run_config,
        }

    def _save(self) -> None:
        state = self._state()
        if self.rank == 0:
            ckpt.atomic_save(state, self.ckpt_dir / ckpt.checkpoint_name(self.step))
            ckpt.prune_checkpoints(self.ckpt_dir, self.cfg.keep_last)
            model = self.objective.model
            if self.ema is not None:
                model = self.ema.averaged_model(model)
            self.export_inference(model, {"step": self.step, "ema": self.ema is not None})
            self.monitor.plot_losses()
        self.last_saved_step = self.step
        self.fabric.barrier()

    def export_inference(self, model: torch.nn.Module, extra: dict[str, Any]) -> None:
        """Write the inference export of a checkpoint (``model``: the EMA weights when EMA is on) to
        ``OUT/model``; a subclass may export otherwise (e.g. only a fine-tune's adapter)."""
        ckpt.export_model(model, self.out_dir / "model", extra={**extra, "run": self.run_config})

    def _load_state(self, state: dict[str, Any], nan_restore: bool) -> None:
        self.objective.load_state_dict(state["objective"])
        if len(state["optimizers"]) != len(self.optimizers):
            raise TrainingError(
                f"checkpoint has {len(state['optimizers'])} optimizer(s), the objective {len(self.optimizers)}; "
                "resume with the same model family and objective"
            )
        # The hyperparameters the objective built from the current config (lr, betas, weight decay, ... per param
        # group) win over the checkpoint's: a run resumed with ``--set train.lr=...`` must use the new values.
        # With an unchanged config they are the same values, and the resume stays exact.
        built = [[_hyperparameters(g) for g in opt.param_groups] for opt in self.optimizers]
        for opt, s, groups in zip(self.optimizers, state["optimizers"], built):
            opt.load_state_dict(s)
            for group, hyper in zip(opt.param_groups, groups):
                _log_changed(group, hyper)
                group.update(hyper)
        for sched, s, spec in zip(self.schedulers, state["schedulers"], self.specs):
            sched.load_state_dict(s)
            sched.base_lrs = [g["initial_lr"] for g in sched.optimizer.param_groups]  # the config's base LRs
            reconfigure(sched, self.cfg, self.steps_per_epoch, spec)  # e.g. resumed with a new --max-steps
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:
            self.ema = EMA(self.objective.model, self.cfg.ema_decay)
        rngs = state["rng"]
        if self.rank < len(rngs):
            ckpt.restore_rng_state(rngs[self.rank])
        else:
            log.warning("checkpoint holds RNG states for %d ranks; rank %d is reseeded", len(rngs), self.rank)
            ckpt.seed_process(self.cfg.seed + int(state["step"]), self.rank)
        self.step = int(state["step"])
        # the running losses belong to the restored weights, also after a NaN/spike restore
        self.loss_mean = {k: [float(v[0]), int(v[1])] for k, v in state.get("loss_mean", {}).items()}
        if not nan_restore:  # a NaN restore keeps its own counters, LR scale and best metric
            self.nan = {k: int(v) for k, v in state["nan"].items()}
            self.lr_scale = float(state.get("lr_scale", 1.0))
            self.best = state.get("best")
        for sched in self.schedulers:
            set_lr_scale(sched, self.lr_scale)


def _hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    """A param group's settings, without its parameters and its current (scheduled) LR."""
    return {k: v for k, v in group.items() if k not in ("params", "lr")}


def _log_changed(restored: dict[str, Any], built: dict[str, Any]) -> None:
    """Say which of a resumed param group's settings the current config changes."""
    for key, value in built.items():
        if key in restored and restored[key] != value:
            log.info("resumed with %s = %r (the checkpoint had %r)", key, value, restored[key])
