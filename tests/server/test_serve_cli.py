"""``soundsmith serve``: argument checks, and a real server process on loopback answering and shutting down."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import soundfile as sf

from soundsmith.cli.main import main
from soundsmith.cli.serve import parse_models
from soundsmith.errors import ConfigError


def test_parse_models_names_and_duplicates():
    assert parse_models(["a=runs/x", "models/tiny-wave/"]) == {
        "a": "runs/x",
        "tiny-wave": "models/tiny-wave/",
    }
    with pytest.raises(ConfigError, match="used twice"):
        parse_models(["runs/x", "other/x"])
    with pytest.raises(ConfigError, match="NAME=MODEL"):
        parse_models(["=runs/x"])


def test_remote_bind_needs_an_api_key(wavenet_dir, capsys, monkeypatch):
    monkeypatch.delenv("SOUNDSMITH_API_KEY", raising=False)
    assert main(["serve", "--model", str(wavenet_dir), "--host", "0.0.0.0"]) == 1
    assert "--api-key" in capsys.readouterr().err


def test_no_default_model_yet(capsys, monkeypatch):
    from soundsmith.models import registry

    monkeypatch.setattr(registry, "shipped_models", lambda: {})
    assert main(["serve"]) == 1
    assert "give --model" in capsys.readouterr().err


def test_bad_model_directory_fails_at_start(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "out")]) == 1
    assert "missing" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter imports torch and librosa: ~15 s on a busy 2-core machine
def test_serve_process_generates_and_stops_on_sigint(tmp_path, wavenet_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "soundsmith.cli.main", "serve", "--model", f"tiny={wavenet_dir}"]
    cmd += ["--port", str(port), "--out-dir", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(base + "/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer in 60 s"
        assert health["models_loaded"] == ["tiny"]  # the CLI loads the default model at start
        r = httpx.post(
            base + "/v1/generate.wav", json={"prompt": "a bell", "duration": 0.1, "seed": 1}, timeout=60
        )
        assert r.status_code == 200
        assert sf.info(io.BytesIO(r.content)).frames == 800
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "out" / "history.sqlite").is_file() and len(
        list((tmp_path / "out" / "audio").glob("*.wav"))
    ) == 1
