import os

import numpy as np
import pytest
import torch

from soundsmith.audio import MelConfig
from soundsmith.data import FeatureCache


def _counting(fn):
    calls = []

    def wrapped():
        calls.append(1)
        return fn()

    return wrapped, calls


def test_hit_returns_identical_arrays(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    x = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    fn, calls = _counting(lambda: x)
    a = cache.get_or_compute({"f": "abc", "cfg": MelConfig()}, fn)
    b = cache.get_or_compute({"cfg": MelConfig(), "f": "abc"}, fn)  # key order does not matter
    c = FeatureCache(tmp_path / "c").get_or_compute({"f": "abc", "cfg": MelConfig()}, fn, mmap=True)
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    for y in (a, b, c):
        assert y.dtype == np.float32 and np.array_equal(y, x)
    assert not list((tmp_path / "c").rglob("*.tmp"))


def test_dicts_and_tensors(tmp_path):
    cache = FeatureCache(tmp_path)
    value = {"z": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": np.array([1, 2], dtype=np.int64)}
    cache.get_or_compute(["latents", 1], lambda: value)
    got = cache.get_or_compute(["latents", 1], lambda: pytest.fail("recomputed"))
    assert (
        set(got) == {"z", "n"} and np.array_equal(got["z"], value["z"].numpy()) and got["n"].dtype == np.int64
    )


def test_changed_config_misses(tmp_path, tone):
    wav = tone(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "c")
    k1 = cache.feature_key(wav, "mel", {"mel": MelConfig(), "sample_rate": 16000})
    k2 = cache.feature_key(wav, "mel", {"mel": MelConfig(n_mels=80), "sample_rate": 16000})
    k3 = cache.feature_key(wav, "mel", {"mel": MelConfig(), "sample_rate": 22050})
    k4 = cache.feature_key(wav, "latent", {"mel": MelConfig(), "sample_rate": 16000})
    assert len({k1, k2, k3, k4}) == 4
    assert k1 == FeatureCache(tmp_path / "c").feature_key(
        wav, "mel", {"sample_rate": 16000, "mel": MelConfig()}
    )


def test_changed_file_misses_even_with_same_size_and_mtime(tmp_path, tone):
    wav = tone(tmp_path / "a.wav", freq=440.0)
    cache = FeatureCache(tmp_path / "c")
    k1 = cache.feature_key(wav, "mel", {})
    st = os.stat(wav)
    # same size, same mtime, different bytes: a fresh process (new cache object) must still miss
    tone(wav, freq=880.0)
    assert os.stat(wav).st_size == st.st_size
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert FeatureCache(tmp_path / "c").feature_key(wav, "mel", {}) != k1
    # a touched file (new mtime) is re-hashed by the same object
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.feature_key(wav, "mel", {}) != k1


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute("k" * 64, lambda: np.ones(3))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"\x93NUMPY broken")
    got = cache.get_or_compute("k" * 64, lambda: np.zeros(3))
    assert np.array_equal(got, np.zeros(3)) and cache.misses == 2


def test_object_arrays_refused(tmp_path):
    with pytest.raises(TypeError):
        FeatureCache(tmp_path).put("x" * 64, np.array([{"a": 1}], dtype=object))
