"""The recording chain (issue 16): reverb, microphone EQ, noise at an annotated SNR, codec band limits."""

import numpy as np
import pytest
from scipy import signal

from soundsmith.data.manifest import read_manifest
from soundsmith.data.synth import synthesize_corpus
from soundsmith.data.synth.augment import apply_chain, draw_chain, room_impulse_response
from soundsmith.data.synth.corpus import draw_clip_spec
from soundsmith.data.synth.dsp import PEAK_LIMIT
from soundsmith.errors import ConfigError

SR = 16000


def _tone_bursts():
    t = np.arange(2 * SR) / SR
    x = np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (0.3 * x).astype(np.float32)


def test_noise_is_added_at_the_annotated_snr():
    x = _tone_bursts()
    for snr in (5.0, 20.0):
        y = apply_chain(x, SR, {"noise": {"color": "white", "snr_db": snr}, "seed": 1})
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        gain = np.dot(y64, x64) / np.dot(x64, x64)  # the chain rescales to keep the level: undo it
        noise = y64 / gain - x64
        active = x != 0
        measured = 10 * np.log10(np.mean(x[active] ** 2) / np.mean(noise**2))
        assert measured == pytest.approx(snr, abs=1.0)


def test_reverb_tail_decays_at_the_drawn_rt60():
    for rt60 in (0.3, 1.0):
        h = room_impulse_response(SR, rt60, 10.0, seed=0)
        energy = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder backward integration
        db = 10 * np.log10(energy / energy[0])
        t10, t30 = np.argmax(db < -5) / SR, np.argmax(db < -25) / SR
        assert 2 * 3 * (t30 - t10) / 2 == pytest.approx(rt60, rel=0.3)  # T20 extrapolated to 60 dB


def test_telephone_codec_removes_what_a_phone_line_cannot_carry():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    y = apply_chain(x, SR, {"codec": {"band": "telephone", "cutoff_hz": 3400.0, "bits": 8}, "seed": 0})
    f, p = signal.welch(y, SR, nperseg=1024)
    band = p[(f > 500) & (f < 3000)].mean()
    assert p[f > 5000].mean() < 1e-3 * band and p[f < 100].mean() < 1e-2 * band


def test_chain_is_seeded_and_peak_limited():
    rng = np.random.default_rng(3)
    chain = draw_chain(rng)
    x = _tone_bursts() * 3
    a, b = apply_chain(x, SR, chain), apply_chain(x, SR, chain)
    assert np.array_equal(a, b) and np.max(np.abs(a)) <= PEAK_LIMIT + 1e-6 and a.shape == x.shape
    stages = [draw_chain(np.random.default_rng(i)) for i in range(200)]
    for stage in ("reverb", "mic_eq", "noise", "codec"):
        assert 20 < sum(stage in c for c in stages) < 180


def test_corpus_augment_rate_leaves_the_rest_of_the_spec_alone(tmp_path):
    plain = [draw_clip_spec(i, seed=2) for i in range(40)]
    chained = [draw_clip_spec(i, seed=2, augment_rate=0.5) for i in range(40)]
    assert all(p == {k: v for k, v in c.items() if k != "chain"} for p, c in zip(plain, chained))
    assert 8 < sum("chain" in c for c in chained) < 32 and not any("chain" in p for p in plain)
    path = synthesize_corpus(tmp_path, clips=6, seed=2, duration=1.0, augment_rate=1.0, progress=False)
    rows = list(read_manifest(path))
    assert all(r.meta["render_chain"] == draw_clip_spec(i, 2, duration=1.0, augment_rate=1.0)["chain"]
               for i, r in enumerate(rows))  # fmt: skip
    with pytest.raises(ConfigError, match="augment_rate"):
        synthesize_corpus(tmp_path, clips=1, augment_rate=2.0, progress=False)
