"""WaveNet training: cross-entropy of the next mu-law sample.

``prepare_batch`` turns a data batch (``audio [B, T]`` float, ``caption`` list, ``label_ids [B, n_labels]``) into
the model's inputs: mu-law ``codes [B, T]``, ``gc_ids [B]`` (argmax of ``label_ids``) when the model has
categories, ``text_emb [B, text_dim]`` (pooled caption embedding; zero for an empty caption) when it has a text
encoder, and ``mel [B, lc_channels, frames]`` computed from the audio when it has local conditioning.
``losses`` feeds ``codes[:, :-1]`` and scores ``codes[:, 1:]`` (``logits[:, :, t]`` predicts ``x[t + 1]``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import MelConfig, mel_spectrogram, mu_law_decode, mu_law_encode
from soundsmith.errors import TrainingError
from soundsmith.models.wavenet import WaveNet
from soundsmith.sampling.wavenet import generate_wavenet
from soundsmith.train.objectives.base import Objective


def wavenet_mel_config(model: WaveNet) -> MelConfig:
    """The mel front end matching a model's local conditioning (``lc_channels`` bands, ``hop_length``)."""
    c = model.config
    return MelConfig.at_rate(c.sample_rate, hop_length=c.hop_length, n_mels=c.lc_channels)


class WaveNetObjective(Objective):
    """Next-sample cross-entropy for :class:`WaveNet`.

    Args:
        model: the network.
        sample_rate: audio rate (default: ``model.config.sample_rate``).
        text_encoder: a built :class:`soundsmith.text.TextEncoder`; built from ``model.config.text_encoder`` when
            None and the config names one. Kept outside the module tree (frozen, not checkpointed).
        skip_receptive_field: score only targets whose prediction saw a full receptive field of real audio.
        sample_seconds: length of the clips :meth:`sample` generates for logging.
    """

    def __init__(
        self,
        model: WaveNet,
        sample_rate: int | None = None,
        text_encoder: Any = None,
        skip_receptive_field: bool = False,
        sample_seconds: float = 0.25,
    ) -> None:
        super().__init__(model, sample_rate)
        if text_encoder is None and model.config.text_encoder:
            from soundsmith.models.registry import text_encoder as shared_text_encoder

            text_encoder = shared_text_encoder(model.config.text_encoder)
        if text_encoder is not None and text_encoder.dim != model.config.text_dim:
            raise TrainingError(
                f"text encoder {getattr(text_encoder, 'name', '?')!r} gives {text_encoder.dim}-d embeddings but "
                f"WaveNetConfig.text_dim={model.config.text_dim}; set text_dim to the encoder's dim"
            )
        object.__setattr__(self, "_text_encoder", text_encoder)  # not a submodule: frozen, not saved
        self.skip_receptive_field = skip_receptive_field
        self.sample_seconds = sample_seconds
        self.find_unused_parameters = model.config.has_global_conditioning

    @property
    def text_encoder(self) -> Any:
        return self._text_encoder

    def _text_embedding(self, captions: list[str], device: torch.device) -> Tensor:
        """Pooled caption embeddings ``[B, text_dim]``; rows with an empty caption are zero (unconditional)."""
        from soundsmith.models.registry import text_encoder as shared_text_encoder

        # the shared copy on that device (built once per process); a shared module is never moved in place
        enc = shared_text_encoder(self._text_encoder.name, device)
        out = torch.zeros(len(captions), self.model.config.text_dim, device=device)
        keep = [i for i, cap in enumerate(captions) if isinstance(cap, str) and cap.strip()]
        if keep:
            pooled = enc.encode([captions[i] for i in keep]).pooled
            out[keep] = pooled.to(device=device, dtype=out.dtype)
        return out

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        c = self.model.config
        audio = batch["audio"]
        if audio.dim() != 2:
            raise TrainingError(f"WaveNet expects batch['audio'] of shape [B, T], got {tuple(audio.shape)}")
        out = dict(batch)
        out["codes"] = mu_law_encode(audio.clamp(-1.0, 1.0), c.quantization_channels)  # [B, T] int64
        if c.gc_cardinality and "label_ids" in batch:
            ids = batch["label_ids"]
            out["gc_ids"] = ids.argmax(-1).clamp(max=c.gc_cardinality - 1) if ids.dim() == 2 else ids.long()
        if self._text_encoder is not None and "caption" in batch:
            out["text_emb"] = self._text_embedding(list(batch["caption"]), audio.device)
        if c.lc_channels:
            out["wavenet_mel"] = mel_spectrogram(audio, wavenet_mel_config(self.model))  # [B, M, frames]
        return out

    def _inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "codes" not in batch:
            batch = self.prepare_batch(batch)
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        batch = self._inputs(batch)
        codes = batch["codes"]
        if codes.shape[1] < 2:
            raise TrainingError(f"WaveNet needs clips of at least 2 samples, got {codes.shape[1]}")
        logits = self.model(
            codes[:, :-1],
            gc_ids=batch.get("gc_ids"),
            text_emb=batch.get("text_emb"),
            mel=batch.get("wavenet_mel"),
        )  # [B, Q, T-1]
        target = codes[:, 1:]
        start = min(self.model.receptive_field - 1, target.shape[1] - 1) if self.skip_receptive_field else 0
        logits, target = logits[:, :, start:], target[:, start:]
        loss = F.cross_entropy(logits.float(), target)
        accuracy = (logits.detach().argmax(1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Up to 2 clips of ``sample_seconds`` conditioned like the first items of ``batch``: ``[N, T]`` float."""
        batch = self._inputs(batch)
        c = self.model.config
        n = min(2, batch["codes"].shape[0])
        length = max(1, int(self.sample_seconds * c.sample_rate))
        gc_ids = batch["gc_ids"][:n] if "gc_ids" in batch else None
        text_emb = batch["text_emb"][:n] if "text_emb" in batch else None
        mel = batch["wavenet_mel"][:n] if "wavenet_mel" in batch else None
        if mel is not None:  # a mel-conditioned clip can only be as long as the audio the mel came from
            length = min(length, batch["codes"].shape[1])
        was_training = self.model.training
        self.model.eval()
        try:
            codes = generate_wavenet(
                self.model, length, seed=list(range(n)), gc_ids=gc_ids, text_emb=text_emb, mel=mel
            )  # [N, T]
        finally:
            self.model.train(was_training)
        return mu_law_decode(codes, c.quantization_channels)


OBJECTIVE = WaveNetObjective
