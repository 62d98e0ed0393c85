"""Audio round trip through the autoencoders: waveform -> log-mel -> (mel VAE) -> vocoder -> waveform.

What ``soundsmith reconstruct IN.wav -o OUT.wav`` runs, so that a user can hear what the shipped mel VAE and
vocoder keep of a sound. Python::

    from soundsmith.pipelines.reconstruct import Reconstructor
    rec = Reconstructor.load(vocoder="vocoder", vae="vae")        # shipped names, model dirs or run dirs
    out = rec(audio, sample_rate)                                  # [T] or [B, T] numpy/tensor -> numpy
    Reconstructor.load(vocoder="griffin-lim", vae=None)            # the DSP baseline, mel only
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soundsmith.audio import MelConfig, griffin_lim, load_audio, mel_spectrogram, resample, save_audio
from soundsmith.errors import ConfigError
from soundsmith.models.vae import MelVAE
from soundsmith.models.vocoder import Vocoder, check_mel_config, check_refine

GRIFFIN_LIM = "griffin-lim"
DEFAULT_REFINE = 8  # rounds of refine_to_mel in a round trip (docs/autoencoders.md, "Pitch read finely")


@dataclass
class Reconstructor:
    """Mel analysis, optional VAE round trip, then the vocoder (or Griffin-Lim when ``vocoder`` is None).

    Attributes:
        vocoder: a loaded :class:`Vocoder`, or None for Griffin-Lim (``griffin_lim_iters`` iterations).
        vae: a loaded :class:`MelVAE`, or None to vocode the mel of the input directly.
        mel_config: the mel front end; must equal the vocoder's and the VAE's (checked).
        refine: rounds of :func:`soundsmith.models.vocoder.refine_to_mel` on the vocoder's output (its
            magnitudes moved to the mel it was given, its phase kept; 0: the network's output as it is).
        level_match: then each clip scaled to the level of the mel it was given
            (:func:`soundsmith.models.vocoder.match_mel_level`): the shipped vocoder alone comes out ~2 LU
            under its source without either (docs/autoencoders.md, "The vocoder held to its mel").
    """

    vocoder: Vocoder | None = None
    vae: MelVAE | None = None
    griffin_lim_iters: int = 64
    mel_config: MelConfig | None = None
    refine: int = DEFAULT_REFINE
    level_match: bool = True

    def __post_init__(self) -> None:
        parts = [(m, name) for m, name in ((self.vocoder, "vocoder"), (self.vae, "mel VAE")) if m is not None]
        if self.mel_config is None:
            self.mel_config = parts[0][0].mel_config() if parts else MelConfig()
        for model, name in parts:
            check_mel_config(model.mel_config(), self.mel_config, who=name)
        check_refine(self.refine)

    @classmethod
    def load(
        cls,
        vocoder: str | Path | None = "vocoder",
        vae: str | Path | None = "vae",
        device: str = "cpu",
        level_match: bool = True,
        refine: int = DEFAULT_REFINE,
    ) -> Reconstructor:
        """Load by shipped name, model directory or run directory; ``vocoder="griffin-lim"`` (or None) for
        the DSP baseline, ``vae=None`` to skip the VAE; ``refine``, ``level_match``: see the class."""
        from soundsmith.models.registry import load_model

        voc = None if vocoder in (None, GRIFFIN_LIM) else load_model(vocoder, device=device)
        ae = None if vae is None else load_model(vae, device=device)
        if voc is not None and not isinstance(voc, Vocoder):
            raise ConfigError(f"--vocoder {vocoder}: {type(voc).__name__} is not a vocoder model")
        if ae is not None and not isinstance(ae, MelVAE):
            raise ConfigError(f"--vae {vae}: {type(ae).__name__} is not a mel VAE model")
        return cls(vocoder=voc, vae=ae, refine=refine, level_match=level_match)

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @torch.no_grad()
    def mel_to_audio(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        """Log-mel ``[B, M, frames]`` -> ``[B, length]`` through the vocoder (held to the mel by ``refine`` and
        ``level_match``) or Griffin-Lim."""
        if self.vocoder is None:
            return griffin_lim(mel, self.mel_config, n_iter=self.griffin_lim_iters, length=length)
        return self.vocoder.vocode(mel, length=length, level_match=self.level_match, refine=self.refine)

    @torch.no_grad()
    def __call__(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None = None) -> np.ndarray:
        """``[T]`` or ``[B, T]`` audio at ``sample_rate`` (default: the models' rate) -> the same shape, at the
        models' rate, float32 numpy."""
        # 1. audio at the models' rate, batch first
        rate = sample_rate or self.sample_rate
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if x.dim() not in (1, 2):
            raise ConfigError(f"reconstruct: expected audio [T] or [B, T], got shape {tuple(x.shape)}")
        single = x.dim() == 1
        x = x[None] if single else x
        if rate != self.sample_rate:
            x = torch.as_tensor(resample(x.numpy(), rate, self.sample_rate))
        device = next(self.vocoder.parameters()).device if self.vocoder is not None else torch.device("cpu")
        x = x.to(device)
        # 2. log-mel [B, M, frames]
        mel = mel_spectrogram(x, self.mel_config)
        # 3. mel VAE round trip (posterior mean)
        if self.vae is not None:
            mel = self.vae(mel.to(next(self.vae.parameters()).device)).to(device)
        # 4. waveform, cropped to the input's length
        out = self.mel_to_audio(mel, x.shape[-1]).float().cpu().numpy()
        return out[0] if single else out


def reconstruct_file(
    in_path: str | Path,
    out_path: str | Path,
    vocoder: str | Path | None = "vocoder",
    vae: str | Path | None = "vae",
    device: str = "cpu",
    level_match: bool = True,
    refine: int = DEFAULT_REFINE,
) -> Path:
    """Read ``in_path`` (any rate, mixed to mono), round-trip it, write ``out_path`` at the models' rate."""
    rec = Reconstructor.load(vocoder=vocoder, vae=vae, device=device, level_match=level_match, refine=refine)
    audio, _ = load_audio(in_path, sample_rate=rec.sample_rate)
    out = rec(audio, rec.sample_rate)
    meta = {"reconstructed_from": Path(in_path).name, "vocoder": str(vocoder), "vae": str(vae)}
    if rec.vocoder is not None:
        meta["level_match"] = str(level_match).lower()
        meta["refine"] = str(refine)
    return save_audio(out_path, np.clip(out, -1.0, 1.0), rec.sample_rate, metadata=meta)
