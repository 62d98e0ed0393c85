"""Export trained autoencoders into the repository's models/ (fp16 storage; loading converts back to float32).

For each run directory: the weights of ``checkpoints/best.ckpt`` (lowest validation mel L1) when present, else
the run's ``model/``. ``--vocoder-checkpoint NAME`` takes the vocoder run's ``checkpoints/NAME`` instead (a
GAN phase trades mel L1 for realism, so its lowest mel L1 is not the checkpoint to ship). For the VAE, the
latent ``scale_factor`` is computed on training clips of ``--data`` and stored in its config. Prints the size
of each exported model.

    python scripts/export_autoencoders.py --vocoder runs/vocoder --vae runs/vae --data work/corpus_ae/manifest.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from soundsmith.audio import load_audio, mel_spectrogram
from soundsmith.data import read_manifest
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.vae import latent_scale_factor
from soundsmith.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def best_model(run: Path, checkpoint: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The run's model with the weights (``model.*`` of the objective state) of ``checkpoints/<checkpoint>``,
    which must exist; without one, of ``checkpoints/best.ckpt``, or the run's ``model/`` when there is
    none."""
    folder = run / "checkpoints"
    chosen = folder / (checkpoint or "best.ckpt")
    if checkpoint is not None and not chosen.is_file():
        have = ", ".join(sorted(p.name for p in folder.glob("*.ckpt"))) or "none"
        raise SystemExit(f"error: {chosen} does not exist; checkpoints in {folder}: {have}")
    model = load_model(run / "model")
    info = {"run": str(run), "weights": "model/"}
    if chosen.is_file():
        state = load_checkpoint(chosen)
        weights = {k[len("model.") :]: v for k, v in state["objective"].items() if k.startswith("model.")}
        model.load_state_dict(weights)
        info = {"run": str(run), "weights": f"checkpoints/{chosen.name}", "step": int(state["step"])}
        # the run's lowest validation loss when this checkpoint was written (its own, for best.ckpt)
        info["best_valid_loss" if checkpoint is None else "run_best_valid_loss"] = state.get("best")
    return model.eval(), info


def training_mels(manifest: Path, mel_cfg, clips: int) -> list[torch.Tensor]:
    rows = read_manifest(manifest)
    root = rows.root
    out = []
    for row in rows.split("train")[:clips]:
        audio, _ = load_audio(row.audio_path(root), sample_rate=mel_cfg.sample_rate)
        out.append(mel_spectrogram(torch.as_tensor(audio)[None], mel_cfg))  # [1, M, frames]
    return out


def export(model: torch.nn.Module, name: str, info: dict, mels: list[torch.Tensor]) -> Path:
    """Save ``model`` with fp16 weights; print the size and how far the reloaded model's outputs moved."""
    target = ROOT / "models" / name
    with torch.no_grad():
        ref = [model.float()(m) for m in mels]
    save_model(model.half(), target, extra={**info, "storage": "float16"})
    model.float()
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"{name}: exported to {target} ({size:.2f} MB) from {info}")
    reloaded = load_model(target)
    with torch.no_grad():
        diff = max(float((reloaded(m) - r).abs().max()) for m, r in zip(mels, ref))
        scale = max(float(r.abs().max()) for r in ref)
    print(f"{name}: fp16 storage moves the output by at most {diff:.2e} (output peak {scale:.2e})")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocoder", type=Path, help="vocoder run directory")
    parser.add_argument("--vae", type=Path, help="mel VAE run directory")
    parser.add_argument("--data", type=Path, help="manifest whose train split sets the VAE's scale factor")
    parser.add_argument(
        "--vocoder-checkpoint",
        default=None,
        help="the vocoder run's checkpoint to export (default: best.ckpt)",
    )
    parser.add_argument("--scale-clips", type=int, default=256, help="training clips for the scale factor")
    args = parser.parse_args()
    if args.vocoder_checkpoint and not args.vocoder:
        parser.error("--vocoder-checkpoint needs --vocoder (the run directory it is in)")
    if args.vocoder:
        model, info = best_model(args.vocoder, args.vocoder_checkpoint)
        probe = [torch.randn(1, model.config.n_mels, 200, generator=torch.Generator().manual_seed(0)) - 5]
        if args.data is not None:
            probe = training_mels(args.data, model.mel_config(), 4)
        export(model, "vocoder", info, probe)
    if args.vae:
        if args.data is None:
            parser.error("--vae needs --data (the training manifest, for the latent scale factor)")
        model, info = best_model(args.vae)
        mels = training_mels(args.data, model.mel_config(), args.scale_clips)
        factor = latent_scale_factor(model, mels)
        scaled = type(model)(dataclasses.replace(model.config, scale_factor=factor))
        scaled.load_state_dict(model.state_dict())
        export(scaled, "vae", {**info, "scale_factor_clips": len(mels)}, mels[:4])
        print(f"vae: latent scale factor {factor:.5f} (1 / std over {len(mels)} training clips)")


if __name__ == "__main__":
    main()
