import numpy as np
import pytest
import torch

from soundsmith.eval.attributes import (
    attribute_errors,
    count_events,
    loudness_order_accuracy,
    onset_count_error,
    pitch_error_cents,
)
from soundsmith.eval.reconstruction import (
    ReconstructionMetrics,
    frame_rate_buzz,
    mel_l1,
    multi_resolution_stft_distance,
    si_sdr,
)

SR = 16000


def tone(freq: float, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_si_sdr_reference_and_scale_invariance():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 4000))
    est = ref + 0.1 * rng.normal(size=(2, 4000))
    r0, e0 = ref - ref.mean(1, keepdims=True), est - est.mean(1, keepdims=True)
    alpha = (e0 * r0).sum(1, keepdims=True) / (r0 * r0).sum(1, keepdims=True)
    expected = 10 * np.log10(((alpha * r0) ** 2).sum(1) / ((e0 - alpha * r0) ** 2).sum(1))
    ours = si_sdr(torch.tensor(est), torch.tensor(ref)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    np.testing.assert_allclose(si_sdr(torch.tensor(3 * est), torch.tensor(ref)).numpy(), ours, rtol=1e-9)


def test_stft_and_mel_distances_zero_on_identical_and_grow_with_noise():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(1, 8000)) * 0.3)
    small = x + 0.01 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    big = x + 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float(multi_resolution_stft_distance(x, x)) == pytest.approx(0.0, abs=1e-9)
    assert float(multi_resolution_stft_distance(x, small)) < float(multi_resolution_stft_distance(x, big))
    from soundsmith.audio import MelConfig

    assert float(mel_l1(x, x, MelConfig())) == pytest.approx(0.0, abs=1e-6)
    assert float(mel_l1(small, x, MelConfig())) < float(mel_l1(big, x, MelConfig()))
    m = ReconstructionMetrics()
    m.update(small, x)
    other = ReconstructionMetrics()
    other.update(big, x)
    res = m.merge(other).compute()
    assert set(res) == {"mr_stft", "mel_l1", "si_sdr"} and np.isfinite(list(res.values())).all()


def test_pitch_error_cents():
    a4 = tone(440.0)
    assert pitch_error_cents(a4, SR, 69) < 20
    assert abs(pitch_error_cents(a4, SR, 70) - 100) < 20  # one semitone off


def test_onsets_and_loudness_order():
    clicks = np.zeros(SR, dtype=np.float32)
    for start in (0.1, 0.4, 0.7):
        i = int(start * SR)
        clicks[i : i + 800] = tone(1000, 0.05) * np.hanning(800).astype(np.float32)
    assert count_events(clicks, SR) == 3 and onset_count_error(clicks, SR, 5) == 2
    assert count_events(np.zeros(SR, dtype=np.float32), SR) == 0
    assert loudness_order_accuracy([-30, -10, -20], [-35, -12, -25]) == 1.0
    assert loudness_order_accuracy([-30, -10], [-10, -30]) == 0.0
    res = attribute_errors(
        [(tone(440, amp=0.05), {"loudness": "soft"}), (tone(440, amp=0.8), {"loudness": "loud"})], SR
    )
    assert res["loudness_order_accuracy"] == 1.0 and res["loudness_clips"] == 2


def test_frame_rate_buzz_reads_the_lines_at_the_frame_rates_multiples_only():
    note = tone(82.4, 4.0) + tone(164.8, 4.0, 0.25)  # E2 and its octave
    assert frame_rate_buzz(note, SR, 160) < 1e-6
    lines = tone(100.0, 4.0, 0.15) + tone(200.0, 4.0, 0.1)  # 100 Hz at hop 160, and twice it
    share = (0.15**2 + 0.1**2) / (0.5**2 + 0.25**2 + 0.15**2 + 0.1**2)
    assert frame_rate_buzz(note + lines, SR, 160) == pytest.approx(share, rel=0.02)
    assert frame_rate_buzz(tone(98.0, 4.0), SR, 160) < 1e-3  # G2, 2 Hz from the line: a note, not a buzz
    assert frame_rate_buzz(note + tone(125.0, 4.0, 0.15), SR, 128) > 0.05  # hop 128: the lines are at 125 Hz
    assert frame_rate_buzz(np.zeros(1600, np.float32), SR, 160) == 0.0
