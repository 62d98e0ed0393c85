"""Codec files: audio file <-> token file (``.npz``), the library side of ``soundsmith codec encode / decode``.

A token file holds ``codes`` (int16 ``[n_q, frames]``), ``length`` (samples), ``sample_rate``, ``hop_length`` and
``codec`` (the model it was encoded with, as given), so ``decode`` needs no other argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soundsmith.errors import ConfigError, ModelError


def load_codec(name_or_path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """A codec model directory, run directory or shipped name -> the ``Codec`` in eval mode."""
    from soundsmith.models.codec import Codec
    from soundsmith.models.registry import load_model

    model = load_model(name_or_path, device=device)
    if not isinstance(model, Codec):
        raise ModelError(
            f"{name_or_path}: a {type(model).__name__}, not a codec; give a codec model or run directory"
        )
    return model.eval()


def encode_file(audio_path: str | Path, out: str | Path, codec: str | Path, n_q: int | None = None) -> Path:
    """Encode an audio file (resampled to the codec's rate, mixed to mono) into a token file; returns its path."""
    from soundsmith.audio import load_audio

    model = load_codec(codec)
    if n_q is not None and not 1 <= n_q <= model.config.num_quantizers:
        raise ConfigError(
            f"n_q={n_q} must be from 1 to {model.config.num_quantizers} (this codec's codebooks)"
        )
    samples, _ = load_audio(audio_path, sample_rate=model.config.sample_rate)
    codes = model.encode(torch.from_numpy(samples)[None], n_q)[0]  # [n_q, frames]
    out = Path(out)
    np.savez(
        out,
        codes=codes.numpy().astype(np.int16),
        length=np.int64(len(samples)),
        sample_rate=np.int64(model.config.sample_rate),
        hop_length=np.int64(model.hop_length),
        codec=np.str_(str(codec)),
    )
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def decode_file(tokens: str | Path, out: str | Path, codec: str | Path | None = None) -> Path:
    """Decode a token file into an audio file (``codec`` defaults to the one recorded in the file)."""
    from soundsmith.audio import save_audio

    try:
        with np.load(tokens, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{tokens}: not a token file written by `soundsmith codec encode` ({e})") from e
    missing = {"codes", "length", "codec"} - set(data)
    if missing:
        raise ConfigError(
            f"{tokens}: missing {sorted(missing)}; not a token file written by `soundsmith codec encode`"
        )
    model = load_codec(codec or str(data["codec"]))
    codes = torch.from_numpy(data["codes"].astype(np.int64))[None]  # [1, n_q, frames]
    audio = model.decode(codes, int(data["length"]))[0].numpy()
    save_audio(out, audio, model.config.sample_rate)
    return Path(out)
