"""Inverse-STFT output head (Vocos): per-frame log magnitude and phase -> waveform. Shared by the vocoder and the
codec's iSTFT decoder: nothing after it runs at the sample rate, which is what makes both fast on a CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ISTFTHead(nn.Module):
    """``[B, frames, dim] -> [B, frames * hop]``: per-frame log magnitude and phase, then inverse STFT.

    The inverse STFT is a windowed overlap-add normalised by the summed squared window, trimmed so that frame
    ``t`` is centred on sample ``t * hop`` (like the centred STFT of the mel front end); the output length is
    exactly ``frames * hop`` for any number of frames.
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, max_log_magnitude: float) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.max_log_magnitude = max_log_magnitude
        self.proj = nn.Linear(dim, n_fft + 2)  # n_fft // 2 + 1 log magnitudes and as many phases
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, h: Tensor) -> Tensor:
        log_mag, phase = self.proj(h).transpose(1, 2).float().chunk(2, dim=1)  # each [B, n_fft/2 + 1, frames]
        mag = torch.exp(log_mag.clamp(max=self.max_log_magnitude))
        return self.istft(torch.complex(mag * torch.cos(phase), mag * torch.sin(phase)))

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
