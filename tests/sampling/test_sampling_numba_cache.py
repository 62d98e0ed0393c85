"""numba kernels are cached on disk: a second fresh process loads them instead of compiling."""

import json
import os
import subprocess
import sys

import pytest

from soundsmith.sampling.numba_cache import choose_cache_dir

SCRIPT = """
import json, torch
from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.sampling.wavenet import generate_wavenet
from soundsmith.sampling.wavenet_fast import numba_steps
torch.manual_seed(0)
model = WaveNet(WaveNetConfig(residual_channels=8, dilation_channels=8, skip_channels=16, stacks=1,
                              layers_per_stack=3)).eval()
codes = generate_wavenet(model, 50, seed=1, method="numba")
print(json.dumps({"hits": sum(numba_steps.stats.cache_hits.values()),
                  "misses": sum(numba_steps.stats.cache_misses.values()), "codes": codes[0, :10].tolist()}))
"""


def test_cache_dir_falls_back_to_temp_only_when_numba_has_no_writable_place(tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("")  # nothing can be created below a regular file, even by root
    writable = tmp_path / "w"
    assert choose_cache_dir(writable, blocked / "user", tmp_path) == (True, None)  # beside the source
    assert choose_cache_dir(blocked / "pkg", writable, tmp_path) == (True, None)  # numba's user cache dir
    enabled, chosen = choose_cache_dir(blocked / "pkg", blocked / "user", tmp_path / "tmp")
    assert enabled and chosen is not None and chosen.parent == tmp_path / "tmp" and chosen.is_dir()
    assert choose_cache_dir(blocked / "pkg", blocked / "user", blocked) == (False, None)


@pytest.mark.slow  # ~35 s on a loaded 2-core machine: two fresh interpreters, one numba compile
def test_second_fresh_process_loads_the_kernel_from_disk(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["misses"] >= 1 and runs[0]["hits"] == 0  # compiled and written
    assert runs[1]["hits"] >= 1 and runs[1]["misses"] == 0  # loaded: no compile
    assert runs[0]["codes"] == runs[1]["codes"]
