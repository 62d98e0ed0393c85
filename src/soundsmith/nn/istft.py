"""Inverse-STFT output head (Vocos): per-frame log magnitude and phase -> waveform. Shared by the vocoder and the
codec's iSTFT decoder: nothing after it runs at the sample rate, which is what makes both fast on a CPU."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PHASE_MODES = ("absolute", "accumulated")


class ISTFTHead(nn.Module):
    """``[B, frames, dim] -> [B, frames * hop]``: per-frame log magnitude and phase, then inverse STFT.

    The inverse STFT is a windowed overlap-add normalised by the summed squared window, trimmed so that frame
    ``t`` is centred on sample ``t * hop`` (like the centred STFT of the mel front end); the output length is
    exactly ``frames * hop`` for any number of frames.

    ``phase="absolute"`` (Vocos): each frame's phases are predicted outright. A convolutional backbone fed a
    steady mel gives every frame the same output, so a steady note's bins keep one phase from frame to frame: the
    frames repeat at the hop, and the output has lines at the frame rate's multiples (100, 200, ... Hz at 16 kHz,
    hop 160) in place of the note's low harmonics (docs/autoencoders.md, "The frame-rate buzz").
    ``phase="accumulated"``: the head predicts, per bin and frame, a phase offset and the bin's phase advance since
    the last frame (its centre frequency's advance plus up to +-pi, i.e. +-2 bins at 4x overlap), and the advances
    are summed over frames. A steady output is then a steady sinusoid at the predicted frequency, whatever the
    frame rate.
    """

    def __init__(
        self, dim: int, n_fft: int, hop_length: int, max_log_magnitude: float, phase: str = "absolute"
    ) -> None:
        super().__init__()
        if phase not in PHASE_MODES:
            raise ValueError(f"ISTFTHead phase={phase!r}; valid: {', '.join(PHASE_MODES)}")
        self.n_fft, self.hop, self.phase = n_fft, hop_length, phase
        self.max_log_magnitude = max_log_magnitude
        bins = n_fft // 2 + 1
        # log magnitudes and phases (absolute); or log magnitudes, phase offsets and advances (accumulated)
        self.proj = nn.Linear(dim, bins * (2 if phase == "absolute" else 3))
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        if phase == "accumulated":  # each bin's centre frequency's advance per hop, wrapped to [-pi, pi)
            centre = 2 * math.pi * torch.arange(bins, dtype=torch.float64) * hop_length / n_fft
            wrapped = torch.remainder(centre + math.pi, 2 * math.pi) - math.pi
            self.register_buffer("centre_advance", wrapped, persistent=False)

    def forward(self, h: Tensor) -> Tensor:
        out = self.proj(h).transpose(1, 2).float()  # [B, bins x 2 or 3, frames]
        if self.phase == "absolute":
            log_mag, phase = out.chunk(2, dim=1)  # each [B, n_fft/2 + 1, frames]
        else:
            log_mag, offset, deviation = out.chunk(3, dim=1)
            phase = offset + self.accumulated_phase(deviation)
        mag = torch.exp(log_mag.clamp(max=self.max_log_magnitude))
        return self.istft(torch.complex(mag * torch.cos(phase), mag * torch.sin(phase)))

    def accumulated_phase(self, deviation: Tensor) -> Tensor:
        """``[B, bins, frames]`` -> the phase each bin has reached at each frame: 0 at frame 0, then the sum of its
        advances ``centre + pi tanh(deviation)`` over frames 1..t (summed in float64, wrapped to [-pi, pi))."""
        advance = self.centre_advance[None, :, None] + math.pi * torch.tanh(deviation[..., 1:].double())
        total = torch.cumsum(advance, dim=-1)
        total = torch.remainder(total + math.pi, 2 * math.pi) - math.pi
        return F.pad(total, (1, 0)).to(deviation.dtype)

    def istft(self, spec: Tensor) -> Tensor:
        """Complex ``[B, n_fft/2 + 1, frames]`` -> ``[B, frames * hop]``; frame ``t`` centred on sample ``t * hop``."""
        frames = spec.shape[-1]
        frames_t = (
            torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[None, :, None]
        )  # [B, n_fft, frames]
        full = (frames - 1) * self.hop + self.n_fft
        kernel, stride = (1, self.n_fft), (1, self.hop)
        wav = F.fold(frames_t, output_size=(1, full), kernel_size=kernel, stride=stride)[:, 0, 0]  # [B, full]
        envelope = F.fold(
            self.window.square()[None, :, None].expand(1, -1, frames),
            output_size=(1, full),
            kernel_size=kernel,
            stride=stride,
        )[0, 0, 0]  # [full]
        start = self.n_fft // 2
        stop = start + frames * self.hop
        return wav[:, start:stop] / envelope[start:stop].clamp(min=1e-8)
