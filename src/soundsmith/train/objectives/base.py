"""The objective: what a model family adds to the shared training loop.

An :class:`Objective` is an ``nn.Module`` that holds the inference ``model`` (and any training-only modules,
e.g. discriminators, as further attributes). The engine wraps the whole objective with Lightning Fabric, so
``losses``/``validate``/``sample``/``prepare_batch`` run through the strategy (DDP/FSDP) and under autocast.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from soundsmith.errors import ConfigError
from soundsmith.train.config import TrainConfig
from soundsmith.train.optimizers import OptimizerSpec


def mix_settings(mix_rate: float, mix_db: Any, name: str = "mix") -> tuple[float, tuple[float, float]]:
    """Checked ``(rate, (low, high))`` of an objective's mixing augmentation: ``objective.<name>_rate`` a share of
    the clips in [0, 1], ``objective.<name>_db`` [low, high] dB of the added clip below the clip (low <= high,
    -20..60)."""
    if not 0.0 <= float(mix_rate) <= 1.0:
        raise ConfigError(f"objective.{name}_rate={mix_rate}: a share of the clips, between 0 (off) and 1")
    lo, hi = (float(v) for v in mix_db)
    if not -20.0 <= lo <= hi <= 60.0:
        raise ConfigError(
            f"objective.{name}_db={list(mix_db)}: [low, high] dB below the clip, low <= high, within -20..60"
        )
    return float(mix_rate), (lo, hi)


def mix_partners(audio: Tensor, partner: Tensor, level_db: Tensor) -> tuple[Tensor, Tensor]:
    """``(mixed [B, T], mixed_in [B] bool)``: clip ``b`` of ``audio [B, T]`` plus clip ``partner[b]`` scaled to an
    RMS ``level_db[b]`` dB below clip ``b``'s. Nothing is added where ``partner`` is -1 or ``b`` itself, or where
    either clip is silent. The mixing augmentation of the tagger and of the spoken-word recognizer."""
    rms = audio.float().pow(2).mean(dim=-1).sqrt()  # [B]
    partner = partner.to(audio.device)
    j = partner.clamp(min=0)
    own = torch.arange(len(audio), device=audio.device)
    gain = rms / rms[j].clamp(min=1e-8) * 10.0 ** (-level_db.to(rms) / 20.0)
    keep = (partner >= 0) & (j != own) & (rms > 1e-8) & (rms[j] > 1e-8)
    gain = torch.where(keep, gain, torch.zeros_like(gain)).to(audio)
    return audio + gain.view(-1, 1) * audio[j], keep


def pad_tokens(rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Token matrices ``[L_i, D]`` -> ``(tokens [B, L, D], mask [B, L])``, zero-padded to the longest."""
    length = max(r.shape[0] for r in rows)
    tokens = torch.zeros(len(rows), length, rows[0].shape[-1], dtype=rows[0].dtype)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return tokens, mask


class CaptionCache:
    """A frozen text encoder's rows by caption text, on the CPU: corpora repeat their captions every epoch, so after
    the first the encoder costs nothing (MiniLM is ~7 ms a caption on 2 cores). ``encode(captions)`` returns one
    row per caption (any value: a pooled vector, unpadded token vectors, a tuple of them); a call returns the
    captions' rows, encoding each missing caption once. The cache empties when a call would take it past ``size``
    captions."""

    def __init__(self, encode: Callable[[list[str]], list[Any]], size: int = 20_000) -> None:
        self.encode, self.size = encode, size
        self.rows: dict[str, Any] = {}

    def __call__(self, captions: list[str]) -> list[Any]:
        if len(self.rows) + len(captions) > self.size:
            self.rows.clear()
        missing = list(dict.fromkeys(c for c in captions if c not in self.rows))
        if missing:
            self.rows.update(zip(missing, self.encode(missing), strict=True))
        return [self.rows[c] for c in captions]


def row_generator(batch: dict[str, Any]) -> torch.Generator:
    """A CPU generator seeded by the batch's dataset row indices (``batch["index"]``, else 0..B-1): augmentation
    drawn from it is the same whenever the same rows come together, so a resumed run replays it."""
    index = batch.get("index", torch.arange(len(batch["audio"])))
    return torch.Generator().manual_seed(zlib.crc32(index.cpu().numpy().astype("int64").tobytes()))


class Objective(nn.Module):
    """Base objective; a family overrides at least :meth:`losses`.

    Several optimizers (e.g. a GAN): :meth:`configure_optimizers` returns one item per optimizer, each a bare
    ``Optimizer`` (steps every step with the ``train.*`` clipping and schedule) or an
    :class:`~soundsmith.train.optimizers.OptimizerSpec` (``every``, ``start_step``, ``clip_grad_norm``,
    ``schedule``). At each step the engine runs, for each optimizer ``i`` active at that step in list order:
    zero its grads, ``losses(batch, i)`` + backward per micro-batch, clip its parameters' gradients, step it and
    its LR schedule. Gradients reach every parameter the loss touches; only optimizer ``i``'s parameters are
    stepped (a generator loss through the discriminator leaves grads there that the discriminator's turn zeroes
    first). Detach what optimizer ``i`` must not train.

    Attributes:
        model: the inference network (what gets exported and EMA-averaged).
        find_unused_parameters: DDP flag; keep True when a loss leaves some parameters unused
            (GAN steps, conditional branches); set False for speed when every loss touches every parameter.
        global_step: set by the engine before each step's ``losses`` calls: the 0-based index of that step.
        active_optimizers: set with it: the indices of the optimizers stepping at this step (e.g. add the
            adversarial term of a generator loss only once its discriminator has started:
            ``1 in self.active_optimizers`` or ``self.global_step >= start``).
    """

    find_unused_parameters: bool = True
    global_step: int = 0
    active_optimizers: tuple[int, ...] = (0,)

    def __init__(self, model: nn.Module, sample_rate: int | None = None) -> None:
        super().__init__()
        self.model = model
        self._sample_rate = sample_rate

    @property
    def sample_rate(self) -> int:
        """Audio rate of ``batch["audio"]`` and of :meth:`sample` output (from ``model.config`` by default)."""
        if self._sample_rate is not None:
            return int(self._sample_rate)
        rate = getattr(getattr(self.model, "config", None), "sample_rate", None)
        return int(rate) if rate else 16000

    def forward(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        return self.losses(batch, opt_index)

    def configure_optimizers(self, cfg: TrainConfig) -> list[Optimizer | OptimizerSpec]:
        """One AdamW over the trainable parameters of the objective (weight decay on matrices only).

        Override to return several optimizers (``Optimizer`` or ``OptimizerSpec`` items; index ``i`` is the
        ``opt_index`` that :meth:`losses` receives).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        return [torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)]

    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Family preprocessing on the device (e.g. text embeddings, mel features); runs without grad."""
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int) -> dict[str, Tensor]:
        """Losses for optimizer ``opt_index``: ``{"loss": scalar to minimise, other scalars to log...}``.

        The loss is the mean over the micro-batch; the engine divides it by ``grad_accum`` itself.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement losses(batch, opt_index)")

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        """Validation metrics for one batch (default: every optimizer's losses, without grad).

        With several optimizers, the keys of optimizer ``i > 0`` get a ``_{i}`` suffix; ``"loss"`` is
        optimizer 0's loss (the one ``best.ckpt`` follows).
        """
        out: dict[str, float] = {}
        n_opt = max(1, int(getattr(self, "num_optimizers", 1)))
        for i in range(n_opt):
            suffix = "" if i == 0 else f"_{i}"
            for key, value in self.losses(batch, i).items():
                out[key + suffix] = float(value.detach().float().mean())
        return out

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Audio ``[N, T]`` to listen to at sample time (e.g. generated from ``batch["caption"]``), or None."""
        return None
