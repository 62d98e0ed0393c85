"""Losses shared by several objectives (the vocoder's and the codec's reconstruction terms)."""

from __future__ import annotations

import torch
from torch import Tensor

STFT_LOSS_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))  # (n_fft, hop, win)


def _magnitudes(x: Tensor, n_fft: int, hop: int, win: int, bins: int | None = None) -> Tensor:
    """``|STFT|`` of ``x [B, T]`` (Hann window of ``win``; its lowest ``bins`` bins when given), floored at 1e-7."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window=window, return_complex=True)
    return (spec if bins is None else spec[:, :bins]).abs().clamp(min=1e-7)


def _convergence_and_log_l1(s_hat: Tensor, s: Tensor) -> Tensor:
    """Spectral convergence over the whole batch, normalised by the larger of the two norms (bounded by 2: a silent
    target, ``||S|| ~ 0``, cannot blow it up; equal to Parallel WaveGAN's when ``||S_hat|| <= ||S||``), plus the
    mean log-magnitude L1."""
    norm = torch.maximum(torch.linalg.norm(s.flatten()), torch.linalg.norm(s_hat.flatten()))
    sc = torch.linalg.norm((s - s_hat).flatten()) / norm.clamp(min=1e-7)
    return sc + torch.mean(torch.abs(torch.log(s) - torch.log(s_hat)))


def multi_resolution_stft_loss(
    y_hat: Tensor, y: Tensor, resolutions: tuple[tuple[int, int, int], ...] = STFT_LOSS_RESOLUTIONS
) -> Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1 (Parallel WaveGAN): ``[B, T]`` x 2 -> ``[]``.

    Spectral convergence is taken over the whole batch and bounded (:func:`_convergence_and_log_l1`); log
    magnitudes floored at 1e-7.
    """
    total = y.new_zeros(())
    for n_fft, hop, win in resolutions:
        total = total + _convergence_and_log_l1(_magnitudes(y_hat, n_fft, hop, win), _magnitudes(y, n_fft, hop, win))
    return total / len(resolutions)


def low_band_stft_loss(y_hat: Tensor, y: Tensor, n_fft: int, fmax_bins: int) -> Tensor:
    """Spectral convergence + log-magnitude L1 (as :func:`multi_resolution_stft_loss`) of one fine STFT (``n_fft``,
    hop ``n_fft // 4``) over its lowest ``fmax_bins`` bins: ``[B, T]`` x 2 -> ``[]``. A frequency resolution fine
    enough to part a low note's harmonics from the frame rate's (a 4096-point STFT at 16 kHz: 3.9 Hz bins), where
    the mel (46 Hz bands there) cannot."""
    hop = n_fft // 4
    return _convergence_and_log_l1(
        _magnitudes(y_hat, n_fft, hop, n_fft, fmax_bins), _magnitudes(y, n_fft, hop, n_fft, fmax_bins)
    )
