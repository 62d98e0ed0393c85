"""The engine in real processes: killed with SIGKILL and resumed; DDP over two CPU processes (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixtures import (
    SineSet,
    assert_same,
    make_gan_objective,
    make_objective,
    objective_weights,
    small_config,
)

from soundsmith.train import Trainer
from soundsmith.train.checkpoint import list_checkpoints

HERE = Path(__file__).resolve().parent

SCRIPT = f"""
import sys
import torch
sys.path.insert(0, {str(HERE)!r})
from train_fixtures import SineSet, make_gan_objective, make_objective, small_config
from soundsmith.train import Trainer

if __name__ == "__main__":  # Fabric's DDP launcher re-runs this file for rank 1
    torch.set_num_threads(1)
    mode, out = sys.argv[1], sys.argv[2]
    objective = make_gan_objective() if sys.argv[-1] == "gan" else make_objective()
    if mode == "kill":
        objective.sleep = float(sys.argv[4])
        cfg = small_config(max_steps=12, checkpoint_every=3, ema_decay=0.9)
        Trainer(objective, SineSet(24), None, cfg, out).fit(resume=sys.argv[3] == "1")
    else:
        objective.model.drop.p = 0.0  # every rank draws its own masks and noise: switch both off
        objective.noise = 0.0
        cfg = small_config(max_steps=4, devices=int(sys.argv[3]), strategy=mode, sample_every=2, valid_every=2)
        Trainer(objective, SineSet(24), SineSet(5), cfg, out).fit()
"""


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


@pytest.mark.slow  # ~40 s each on a loaded 2-core machine: two fresh interpreters importing torch
@pytest.mark.parametrize(
    "kind", ["tiny", "gan"]
)  # gan: a second optimizer, delayed, every 2 steps, own clip/LR
def test_sigkill_then_resume_equals_straight_run(tmp_path, one_thread, kind):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), "kill", str(out), "0", "0.15", kind],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(out / "checkpoints") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # somewhere inside the next steps
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = list_checkpoints(out / "checkpoints")
    assert saved and saved[-1].name != "step-0000012.ckpt"
    subprocess.run(
        [sys.executable, str(script), "kill", str(out), "1", "0", kind],
        env=_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    straight = make_gan_objective() if kind == "gan" else make_objective()
    Trainer(
        straight,
        SineSet(24),
        None,
        small_config(max_steps=12, checkpoint_every=3, ema_decay=0.9),
        tmp_path / "s",
    ).fit()
    assert_same(objective_weights(straight), objective_weights(out))


@pytest.mark.slow  # ~45 s: Fabric launches a second interpreter, gloo rendezvous
def test_ddp_two_cpu_processes_match_single_process(tmp_path, one_thread):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), "ddp", str(tmp_path / "ddp"), "2"],
        env=_env(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    single = make_objective()
    single.model.drop.p = 0.0
    single.noise = 0.0
    cfg = small_config(max_steps=4, sample_every=2, valid_every=2)
    result = Trainer(single, SineSet(24), SineSet(5), cfg, tmp_path / "single").fit()
    assert_same(objective_weights(single), objective_weights(tmp_path / "ddp"), atol=1e-5)

    def valid_losses(d):
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        return [r["valid/loss"] for r in rows if "valid/loss" in r]

    # 5 validation items over 2 ranks: padded to 6, so the DDP mean counts item 0 twice
    assert len(valid_losses(tmp_path / "ddp")) == 2
    assert valid_losses(tmp_path / "ddp")[-1] == pytest.approx(result["valid_loss"], rel=0.2)
    assert list((tmp_path / "ddp" / "samples").glob("*.wav"))
