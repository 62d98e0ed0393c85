"""Reconstruction metrics between an estimate and its target (codecs, vocoders): MR-STFT, mel L1, SI-SDR."""

from __future__ import annotations

from typing import Any

import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.eval.base import Metric

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), as in Parallel WaveGAN


def _align(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(est.shape[-1], ref.shape[-1])
    return est[..., :n].double(), ref[..., :n].double()


def multi_resolution_stft_distance(
    est: torch.Tensor, ref: torch.Tensor, resolutions: tuple[tuple[int, int], ...] = STFT_RESOLUTIONS
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions: `[B, T], [B, T] -> [B]`."""
    est, ref = _align(torch.as_tensor(est), torch.as_tensor(ref))
    total = torch.zeros(est.shape[:-1], dtype=torch.float64)
    for n_fft, hop in resolutions:
        win = torch.hann_window(n_fft, dtype=torch.float64)
        e = torch.stft(est, n_fft, hop, window=win, return_complex=True).abs()
        r = torch.stft(ref, n_fft, hop, window=win, return_complex=True).abs()
        sc = torch.linalg.norm((r - e).flatten(-2), dim=-1) / torch.linalg.norm(r.flatten(-2), dim=-1).clamp(
            min=1e-8
        )
        mag = (torch.log(e.clamp(min=1e-7)) - torch.log(r.clamp(min=1e-7))).abs().mean(dim=(-2, -1))
        total = total + sc + mag
    return total / len(resolutions)


def mel_l1(est: torch.Tensor, ref: torch.Tensor, mel_cfg: Any) -> torch.Tensor:
    """Mean |log-mel(est) - log-mel(ref)|: `[B, T], [B, T] -> [B]`."""
    est, ref = _align(torch.as_tensor(est), torch.as_tensor(ref))
    return (
        (mel_spectrogram(est.float(), mel_cfg) - mel_spectrogram(ref.float(), mel_cfg))
        .abs()
        .mean(dim=(-2, -1))
        .double()
    )


def frame_rate_buzz(audio: Any, sr: int, hop: int, harmonics: int = 4, width_hz: float = 1.5) -> float:
    """The share of a clip's energy between half the frame rate ``sr / hop`` and ``harmonics + 0.5`` times it that
    lies within ``width_hz`` of the frame rate's multiples (1 to ``harmonics``): a vocoder whose frames do not join
    up buzzes at its frame rate (100 Hz at 16 kHz, hop 160), a line a recording seldom has. One long Hann-windowed
    spectrum of the whole clip (0.06 Hz bins), so that the lines part from the notes beside them; 0 for silence.
    """
    x = torch.as_tensor(audio, dtype=torch.float64).flatten()
    n = 1 << max(18, (len(x) - 1).bit_length())
    power = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False, dtype=torch.float64), n).abs().square()
    freqs = torch.fft.rfftfreq(n, 1.0 / sr, dtype=torch.float64)
    rate = sr / hop
    band = power[(freqs > rate / 2) & (freqs < (harmonics + 0.5) * rate)].sum()
    lines = sum(power[(freqs - k * rate).abs() < width_hz].sum() for k in range(1, harmonics + 1))
    return float(lines / band) if band > 0 else 0.0


def si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (higher is better): `[B, T], [B, T] -> [B]`. Both are mean-removed."""
    est, ref = _align(torch.as_tensor(est), torch.as_tensor(ref))
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref * ref).sum(-1, keepdim=True).clamp(min=eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target * target).sum(-1).clamp(min=eps) / (noise * noise).sum(-1).clamp(min=eps))


class ReconstructionMetrics(Metric):
    """Means of MR-STFT distance, mel L1 and SI-SDR: `update(est [B, T], ref [B, T])`."""

    sum_states = ("stft", "mel", "sisdr", "count")

    def __init__(self, mel_cfg: Any = None) -> None:
        if mel_cfg is None:
            from soundsmith.audio import MelConfig

            mel_cfg = MelConfig()
        self.mel_cfg = mel_cfg
        super().__init__()

    def update(self, est: torch.Tensor, ref: torch.Tensor) -> None:
        est, ref = torch.as_tensor(est), torch.as_tensor(ref)
        if est.dim() == 1:
            est, ref = est[None], ref[None]
        self.stft = self.stft + multi_resolution_stft_distance(est, ref).sum()
        self.mel = self.mel + mel_l1(est, ref, self.mel_cfg).sum()
        self.sisdr = self.sisdr + si_sdr(est, ref).sum()
        self.count = self.count + est.shape[0]

    def compute(self) -> dict[str, float]:
        n = float(self.count)
        if n == 0:
            return {"mr_stft": float("nan"), "mel_l1": float("nan"), "si_sdr": float("nan")}
        return {
            "mr_stft": float(self.stft) / n,
            "mel_l1": float(self.mel) / n,
            "si_sdr": float(self.sisdr) / n,
        }
