"""Codec files: audio file <-> token file (``.npz``), the library side of ``soundsmith codec encode / decode``.

``round_trip`` / ``reconstruct_file`` run audio through a codec and back (what ``soundsmith reconstruct
--model CODEC`` writes), at all or the first ``n_q`` codebooks.

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


def check_n_q(model: torch.nn.Module, n_q: int | None) -> None:
    """A one-line error unless ``n_q`` is None (every codebook) or one of the codec's codebook counts."""
    if n_q is not None and not 1 <= n_q <= model.config.num_quantizers:
        raise ConfigError(
            f"n_q={n_q} (--n-q) must be from 1 to {model.config.num_quantizers} (this codec's codebooks)"
        )


@torch.no_grad()
def round_trip(
    model: torch.nn.Module, audio: np.ndarray | torch.Tensor, n_q: int | None = None
) -> np.ndarray:
    """``[T]`` or ``[B, T]`` audio at the codec's rate -> encoded to the first ``n_q`` codebooks and decoded, the
    same shape, float32 numpy."""
    check_n_q(model, n_q)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if x.dim() not in (1, 2):
        raise ConfigError(f"codec round trip: expected audio [T] or [B, T], got shape {tuple(x.shape)}")
    device = next(model.parameters()).device
    out = model(x.reshape(-1, x.shape[-1]).to(device), n_q).audio.float().cpu().numpy()
    return out[0] if x.dim() == 1 else out


def reconstruct_file(
    in_path: str | Path, out_path: str | Path, codec: str | Path, n_q: int | None = None, device: str = "cpu"
) -> Path:
    """Read ``in_path`` (any rate, mixed to mono), round-trip it through ``codec``, write ``out_path`` at its rate."""
    from soundsmith.audio import load_audio, save_audio

    model = load_codec(codec, device=device)
    check_n_q(model, n_q)  # before reading any audio
    audio, _ = load_audio(in_path, sample_rate=model.config.sample_rate)
    out = round_trip(model, audio, n_q)
    meta = {"reconstructed_from": Path(in_path).name, "codec": str(codec), "n_q": str(n_q or "all")}
    return save_audio(out_path, np.clip(out, -1.0, 1.0), model.config.sample_rate, metadata=meta)


def encode_file(audio_path: str | Path, out: str | Path, codec: str | Path, n_q: int | None = None) -> Path:
    """Encode an audio file (resampled to the codec's rate, mixed to mono) into a token file; returns its path."""
    from soundsmith.audio import load_audio

    model = load_codec(codec)
    check_n_q(model, n_q)
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
