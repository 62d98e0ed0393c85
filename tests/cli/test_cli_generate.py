"""``soundsmith generate`` and ``soundsmith models list``: through the family declarations, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soundsmith import families, pipelines
from soundsmith.audio import load_audio, read_metadata
from soundsmith.cli import generate as generate_cmd
from soundsmith.cli.main import main
from soundsmith.models.registry import save_model, shipped_models
from soundsmith.models.wavenet import WaveNet, WaveNetConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402


def _tiny_wavenet(directory):
    torch.manual_seed(0)
    cfg = WaveNetConfig(
        residual_channels=4, dilation_channels=4, skip_channels=8, stacks=1, layers_per_stack=3
    )
    return save_model(WaveNet(cfg), directory)


def test_models_list_prints_declared_families_and_shipped_models(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name, family in families.all_families().items():
        assert f"{name}" in out and family.kind in out
    for name in shipped_models():
        assert name in out.split("shipped models:")[1]


def test_model_default_is_a_one_line_error_naming_the_shipped_models(capsys, monkeypatch):
    from soundsmith.models import registry

    found = {k: v for k, v in registry.shipped_models().items() if k != "default"}
    monkeypatch.setattr(registry, "shipped_models", lambda: found)  # as on a checkout without models/default
    assert main(["generate", "a bell"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "default" in err
    for name in found:
        assert name in err


def test_a_prompt_far_from_every_training_caption_gets_one_warning_line(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from test_card import make_manifest

    from soundsmith.models.card import write_card

    model = tiny_model_dir("latent_diffusion", tmp_path / "ld")
    write_card(model, make_manifest(tmp_path / "data" / "manifest.jsonl"))
    argv = ["--model", str(model), "-o", str(tmp_path / "a.wav"), "--duration", "0.2"]
    assert main(["generate", "photosynthesis converts light into chemical energy", *argv]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "photosynthesis" in err
    assert main(["generate", "a dog barks twice", *argv]) == 0  # a training caption
    assert "warning:" not in capsys.readouterr().err


def test_evaluator_model_cannot_generate(tmp_path, capsys):
    from soundsmith.models.tagger import AudioTagger, TaggerConfig

    save_model(AudioTagger(TaggerConfig(labels=["a", "b"])), tmp_path / "tagger")
    assert main(["generate", "a bell", "--model", str(tmp_path / "tagger")]) == 1
    err = capsys.readouterr().err
    assert "does not generate audio" in err and "wavenet" in err


def test_generate_writes_candidates_with_provenance(tmp_path, capsys):
    model = _tiny_wavenet(tmp_path / "wn")
    out = tmp_path / "gen.wav"
    argv = ["generate", "", "--model", str(model), "--out", str(out), "--duration", "0.01", "--seed", "4"]
    assert main([*argv, "--num-candidates", "2", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "gen-0.wav"), str(tmp_path / "gen-1.wav")]
    second, sr = load_audio(tmp_path / "gen-1.wav")
    meta = read_metadata(tmp_path / "gen-1.wav")
    assert sr == 16000 and second.shape == (160,)
    assert meta["seed"] == "5" and meta["model"] == str(model) and meta["family"] == "wavenet"
    assert len(meta["weights_sha256"]) == 64 and meta["temperature"] == "0.9"
    assert main([*argv[:-1], "5", "--temperature", "0.9"]) == 0  # candidate 1 of seed 4 == seed 5 alone
    alone, _ = load_audio(out)
    np.testing.assert_array_equal(alone, second)


def test_duration_help_tells_the_real_default_and_limit():
    assert generate_cmd.DEFAULT_DURATION_S == pipelines.DEFAULT_DURATION_S
    assert generate_cmd.MAX_DURATION_S == pipelines.MAX_DURATION_S
    r = subprocess.run(
        [sys.executable, "-m", "soundsmith", "generate", "--help"], capture_output=True, text=True, check=True
    )
    help_text = " ".join(r.stdout.split())
    assert f"default: {pipelines.DEFAULT_DURATION_S:g}" in help_text
    assert f"at most {pipelines.MAX_DURATION_S:g}" in help_text


# --- the latent-diffusion family through `soundsmith generate` ---------------------------------------------------


def _tiny_latent(directory):
    """A tiny latent-diffusion model directory (VAE and vocoder saved as its sub-folders)."""
    from soundsmith.models.latent_diffusion import (
        LatentDenoiserConfig,
        LatentDiffusion,
        LatentDiffusionConfig,
    )
    from soundsmith.models.vae import MelVAE, VAEConfig
    from soundsmith.models.vocoder import Vocoder, VocoderConfig

    torch.manual_seed(0)
    denoiser = LatentDenoiserConfig(
        latent_channels=8, latent_bins=1, d_model=32, layers=1, heads=2, text_dim=32
    )
    config = LatentDiffusionConfig(denoiser=denoiser, text_encoder="hashed:32", steps=2, duration=0.3)
    parts = {
        "vae": MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)),
        "vocoder": Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)),
    }
    model = LatentDiffusion(config, components=parts)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.05)
    return save_model(model, directory)


@pytest.fixture(scope="module")
def latent_model(tmp_path_factory):
    return _tiny_latent(tmp_path_factory.mktemp("ld") / "model")


def _tone_file(path, seconds=0.5):
    from soundsmith.audio import save_audio

    t = np.arange(int(seconds * 16000)) / 16000
    save_audio(path, (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    return path


def test_latent_generate_is_reproducible_and_records_provenance(latent_model, tmp_path, capsys):
    argv = [
        "generate",
        "a bell rings",
        "--model",
        str(latent_model),
        "--seed",
        "7",
        "--negative-prompt",
        "hiss",
    ]
    assert main([*argv, "-o", str(tmp_path / "a.wav"), "--steps", "3", "--guidance", "2.5"]) == 0
    assert main([*argv, "-o", str(tmp_path / "b.wav"), "--steps", "3", "--guidance", "2.5"]) == 0
    a, sr = load_audio(tmp_path / "a.wav")
    b, _ = load_audio(tmp_path / "b.wav")
    assert sr == 16000 and a.shape == (int(0.3 * 16000),)  # the model's default duration
    np.testing.assert_array_equal(a, b)
    meta = read_metadata(tmp_path / "a.wav")
    assert meta["prompt"] == "a bell rings" and meta["seed"] == "7" and meta["negative_prompt"] == "hiss"
    assert meta["steps"] == "3" and meta["guidance"] == "2.5" and meta["sampler"] == "flow_euler"
    assert meta["family"] == "latent_diffusion" and meta["model"] == str(latent_model)
    assert len(meta["weights_sha256"]) == 64 and meta["soundsmith_version"]
    assert main([*argv, "-o", str(tmp_path / "c.wav"), "--duration", "0.55"]) == 0
    assert load_audio(tmp_path / "c.wav")[0].shape == (int(0.55 * 16000),)


def test_latent_candidates_are_ranked_by_the_shipped_clap(latent_model, tmp_path, monkeypatch, capsys):
    from soundsmith.models.clap import AudioTextContrastive, ClapConfig
    from soundsmith.models.registry import SHIPPED_ENV

    torch.manual_seed(0)
    clap = ClapConfig(
        text_encoder="hashed:32", text_dim=32, channels=[8, 16], audio_embed_dim=16, proj_dim=16
    )
    save_model(AudioTextContrastive(clap), tmp_path / "shipped" / "clap")
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    out = tmp_path / "gen.wav"
    assert main(["generate", "rain", "--model", str(latent_model), "-o", str(out), "-n", "3"]) == 0
    files = capsys.readouterr().out.split()
    assert files == [str(tmp_path / f"gen-{i}.wav") for i in range(3)]
    metas = [read_metadata(f) for f in files]
    scores = [float(m["clap_score"]) for m in metas]  # each file carries its own score and seed, best first
    assert scores == sorted(scores, reverse=True)
    assert sorted(int(m["seed"]) for m in metas) == [0, 1, 2]


def test_latent_prompts_file_text_and_jsonl(latent_model, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        "# a comment\na bell rings\n\n"
        '{"prompt": "rain on a roof", "seed": 4, "duration": 0.2, "name": "rain", "negative_prompt": "wind"}\n'
    )
    out_dir = tmp_path / "out"
    argv = [
        "generate",
        "--model",
        str(latent_model),
        "--prompts-file",
        str(prompts),
        "--out-dir",
        str(out_dir),
    ]
    assert main([*argv, "--seed", "1"]) == 0
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["a bell rings", "rain on a roof"]
    assert rows[0]["seed"] == 1 and rows[1]["seed"] == 4 and rows[1]["negative_prompt"] == "wind"
    assert rows[1]["files"] == [str(out_dir / "rain.wav")]
    assert load_audio(out_dir / "rain.wav")[0].shape == (int(0.2 * 16000),)
    first, _ = load_audio(rows[0]["files"][0])
    assert (
        main(
            [
                "generate",
                "a bell rings",
                "--model",
                str(latent_model),
                "--seed",
                "1",
                "-o",
                str(tmp_path / "x.wav"),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(first, load_audio(tmp_path / "x.wav")[0])  # same as the single command


def test_latent_init_audio_strength_and_inpaint(latent_model, tmp_path):
    from soundsmith.pipelines import load_pipeline

    tone = _tone_file(tmp_path / "in.wav")
    base = ["generate", "a dog barks", "--model", str(latent_model), "--init-audio", str(tone)]
    assert main([*base, "--strength", "0", "-o", str(tmp_path / "s0.wav")]) == 0
    trip = load_pipeline(latent_model).round_trip(str(tone))
    got, _ = load_audio(tmp_path / "s0.wav")
    np.testing.assert_allclose(got, trip, atol=1e-4)  # 16-bit-free float WAV round trip
    assert main([*base, "--inpaint", "0.3:0.5", "-o", str(tmp_path / "ip.wav")]) == 0
    assert read_metadata(tmp_path / "ip.wav")["inpaint"] == "0.3:0.5"
    assert load_audio(tmp_path / "ip.wav")[0].shape == trip.shape


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--steps", "0"], "steps=0"),
        (["--duration", "31"], "30 s limit"),
        (["--duration", "0"], "duration"),
        (["--inpaint", "0.3-0.5", "--init-audio", "{tone}"], "START:END"),
        (["--inpaint", "0.3:9", "--init-audio", "{tone}"], "inpaint range"),
        (["--strength", "2", "--init-audio", "{tone}"], "strength=2"),
        (["--init-audio", "{missing}"], "missing.wav"),
        (["--prompts-file", "{tone}"], "not both"),
    ],
)
def test_latent_bad_input_is_one_line_exit_1(latent_model, tmp_path, capsys, extra, message):
    tone = _tone_file(tmp_path / "in.wav")
    extra = [e.format(tone=tone, missing=tmp_path / "missing.wav") for e in extra]
    assert (
        main(["generate", "a bell", "--model", str(latent_model), "-o", str(tmp_path / "o.wav"), *extra]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_empty_prompt_and_bad_prompts_files(latent_model, tmp_path, capsys):
    assert main(["generate", "", "--model", str(latent_model), "-o", str(tmp_path / "o.wav")]) == 1
    assert "prompt is empty" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "sed": 3}\n')
    assert (
        main(
            ["generate", "--model", str(latent_model), "--prompts-file", str(bad), "--out-dir", str(tmp_path)]
        )
        == 1
    )
    assert "bad.jsonl:1: unknown key(s) sed" in capsys.readouterr().err
    assert main(["generate", "--model", str(latent_model), "--prompts-file", str(bad)]) == 1
    assert "needs --out-dir" in capsys.readouterr().err


def test_options_a_family_does_not_take_are_clear_errors(latent_model, tmp_path, capsys):
    wavenet = _tiny_wavenet(tmp_path / "wn")
    tone = _tone_file(tmp_path / "in.wav")
    assert main(["generate", "a", "--model", str(wavenet), "--init-audio", str(tone)]) == 1
    assert "--init-audio is not supported by the wavenet family" in capsys.readouterr().err
    assert main(["generate", "a", "--model", str(latent_model), "--temperature", "0.5"]) == 1
    assert "--temperature is not supported by the latent_diffusion family" in capsys.readouterr().err


def test_stream_writes_the_same_audio_as_the_result(tmp_path, capsys):
    model = tiny_model_dir("token_lm", tmp_path / "lm")
    out = tmp_path / "s.wav"
    assert (
        main(["generate", "rain", "--model", str(model), "--out", str(out), "--duration", "0.2", "--stream"])
        == 0
    )
    streamed, _ = load_audio(out)
    assert read_metadata(out)["prompt"] == "rain"  # rewritten with provenance once complete
    plain = tmp_path / "p.wav"
    assert main(["generate", "rain", "--model", str(model), "--out", str(plain), "--duration", "0.2"]) == 0
    np.testing.assert_allclose(streamed, load_audio(plain)[0], atol=1e-4)


def test_stream_and_truncation_refused_by_families_without_them(tmp_path, capsys):
    model = _tiny_wavenet(tmp_path / "wn")
    assert main(["generate", "a", "--model", str(model), "--out", str(tmp_path / "x.wav"), "--stream"]) == 1
    assert "--stream is not supported by the wavenet family" in capsys.readouterr().err
    args = ["generate", "a", "--model", str(model), "--out", str(tmp_path / "x.wav"), "--truncation", "0.5"]
    assert main(args) == 1
    assert "--truncation is not supported by the wavenet family" in capsys.readouterr().err


def test_truncation_reaches_a_gan_family(tmp_path):
    model = tiny_model_dir("ganmix", tmp_path / "gm")
    runs = []
    for trunc in ("0.2", "3.0"):
        out = tmp_path / f"g{trunc}.wav"
        assert (
            main(["generate", "a dog", "--model", str(model), "--out", str(out), "--truncation", trunc]) == 0
        )
        runs.append(load_audio(out)[0])
    assert not np.array_equal(runs[0], runs[1])


def test_compose_flag_reaches_the_pipeline_and_the_file(latent_model, tmp_path, capsys):
    prompt = "a bell rings over steady rain"
    base = ["generate", prompt, "--model", str(latent_model), "--seed", "2"]
    assert main([*base, "-o", str(tmp_path / "on.wav"), "--compose"]) == 0
    assert (
        "composed: background: steady rain | 1: a bell rings" in capsys.readouterr().err
    )  # said, not only kept
    assert main([*base, "-o", str(tmp_path / "off.wav"), "--no-compose"]) == 0
    assert main([*base, "-o", str(tmp_path / "default.wav")]) == 0  # the model's setting: off
    assert "composed" not in capsys.readouterr().err
    meta = read_metadata(tmp_path / "on.wav")
    assert meta["composed"] == "background: steady rain | 1: a bell rings"
    assert "composed" not in read_metadata(tmp_path / "off.wav")
    on, off, default = (load_audio(tmp_path / f"{n}.wav")[0] for n in ("on", "off", "default"))
    assert not np.array_equal(on, off)
    np.testing.assert_array_equal(off, default)
    wavenet = _tiny_wavenet(tmp_path / "wn")
    assert main(["generate", "a", "--model", str(wavenet), "--compose"]) == 1
    assert "--compose is not supported by the wavenet family" in capsys.readouterr().err


def test_tune_flag_reaches_the_pipeline_and_is_reported(latent_model, tmp_path, capsys, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    monkeypatch.setattr(
        ld, "tune_note", lambda clip, sr, note, strike=False: (clip * 0.5, -12.0)
    )  # the tiny model makes noise
    base = ["generate", "a harsh buzzer at C3", "--model", str(latent_model), "--seed", "2"]
    assert main([*base, "-o", str(tmp_path / "on.wav"), "--tune"]) == 0
    assert "tuned to the named note or register by (semitones, per candidate): -12.00" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "off.wav"), "--no-tune"]) == 0
    assert "tuned" not in capsys.readouterr().err
    assert read_metadata(tmp_path / "on.wav")["tuned_semitones"] == "[[-12.0]]"
    assert "tuned_semitones" not in read_metadata(tmp_path / "off.wav")
    on, off = (load_audio(tmp_path / f"{n}.wav")[0] for n in ("on", "off"))
    assert not np.array_equal(on, off)


def test_compute_flag_reaches_the_pipeline_and_the_file(latent_model, tmp_path, capsys):
    base = ["generate", "a bell rings", "--model", str(latent_model), "--seed", "3"]
    assert main([*base, "-o", str(tmp_path / "int8.wav"), "--compute", "int8"]) == 0
    assert main([*base, "-o", str(tmp_path / "f32.wav")]) == 0  # the model's setting: float32
    assert read_metadata(tmp_path / "int8.wav")["compute"] == "int8"
    assert read_metadata(tmp_path / "f32.wav")["compute"] == "float32"
    a, b = (load_audio(tmp_path / f"{n}.wav")[0] for n in ("int8", "f32"))
    assert a.shape == b.shape and not np.array_equal(a, b)
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "bad.wav"), "--compute", "fp16"]) == 1
    err = capsys.readouterr().err
    assert "compute='fp16' must be one of ['float32', 'int8']" in err and "Traceback" not in err
    assert not (tmp_path / "bad.wav").exists()


def test_what_was_done_lines():
    from soundsmith.cli.generate import what_was_done

    assert what_was_done({}) == []
    lines = what_was_done(
        {"composed": "1: a bell rings once (x3)", "counted_as_asked": [4], "tuned_semitones": [[-12.0], []]}
    )
    assert lines == [
        "composed: 1: a bell rings once (x3)",
        "counted sound generated as asked (no event to repeat) for seeds [4]",
        "tuned to the named note or register by (semitones, per candidate): -12.00; none",
    ]
    assert what_was_done({"redrawn_for_direction": [2, 0]}) == [
        "drawn again for not moving the asked pitch direction (draws made again, per candidate): 2, 0"
    ]
    assert what_was_done({"dynamics_gain_db": [[-6.5], []]}) == [
        "held to the soft or loud level asked (dB per part, per candidate): -6.5; none"
    ]
    assert what_was_done({"cut_for_direction": [1, 0]}) == [
        "cut where the pitch last moved the asked direction (parts, per candidate): 1, 0"
    ]
    assert what_was_done({"redrawn_for_pitch": [1, 2]}) == [
        "drawn again for a pitch or register off its ask (draws made again, per candidate): 1, 2"
    ]
    assert what_was_done({"kind_guidance": "noise 2, speech 2"}) == [
        "generated at their kind's guidance (the model's kind_guidance): noise 2, speech 2"
    ]
