"""Audio embedders for the distribution metrics: the built-in tagger (default), the built-in CLAP-style model,
and optional external models that load only from local weights (LAION-CLAP and EnCodec through transformers,
PANNs through `panns_inference`, VGGish through `torchvggish`).

Every embedder has `name` (identity, used as part of the cache key), `sample_rate` (what it wants) and
`embed(audio [B, T], sr) -> [B, D]`; audio at another rate is resampled with soxr.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.errors import ModelError


@runtime_checkable
class Embedder(Protocol):
    name: str
    sample_rate: int

    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        """`[B, T]` audio at `sr` -> `[B, D]` float32 embeddings."""
        ...


def _resample(audio: torch.Tensor | np.ndarray, sr: int, target: int) -> torch.Tensor:
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    if sr == target:
        return x
    import soxr

    return torch.from_numpy(
        np.stack([soxr.resample(row, sr, target) for row in x.numpy()]).astype(np.float32)
    )


_VOLATILE_KEYS = {"transformers_version", "torch_dtype", "dtype", "architectures"}


def model_identity(model: torch.nn.Module) -> str:
    """Short hash of a model's config and weights: changes whenever the embeddings could change."""
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    if is_dataclass(cfg):
        # Nested config sections hash as if their fields were flat, so regrouping fields (schema 2 nested the
        # mel front end as `mel`) keeps the identities of models whose embeddings did not change.
        cfg_dict = {}
        for key, value in asdict(cfg).items():
            nested = getattr(cfg, key, None)
            cfg_dict.update(value if is_dataclass(nested) else {key: value})
    else:
        cfg_dict = getattr(cfg, "to_dict", lambda: {"repr": repr(cfg)})()
    # transformers configs carry bookkeeping (source path, version, dtype) that does not change the outputs
    cfg_dict = {k: v for k, v in cfg_dict.items() if not k.startswith("_") and k not in _VOLATILE_KEYS}
    h.update(json.dumps(cfg_dict, sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class TaggerEmbedder:
    """The built-in `AudioTagger`: penultimate embedding (FAD) plus logits (KL, IS, adherence) in one pass.

    `bf16=True` runs the CNN under CPU bf16 autocast (faster on CPUs with AVX-512 bf16; see
    benchmarks/bench_eval.py); the outputs are returned as float32.
    """

    def __init__(self, tagger: torch.nn.Module, bf16: bool = False, device: str = "cpu") -> None:
        # channels-last weights let oneDNN pick its fast NHWC convolutions (measured in benchmarks/bench_eval.py)
        self.model = tagger.eval().to(device, memory_format=torch.channels_last)
        self.device = device
        self.bf16 = bf16
        self.mel_cfg = tagger.config.mel
        self.sample_rate = self.mel_cfg.sample_rate
        self.labels = list(tagger.config.labels)
        self.name = f"tagger-{model_identity(tagger)}" + ("-bf16" if bf16 else "")  # cache key part

    @torch.inference_mode()
    def embed_and_logits(
        self, audio: torch.Tensor | np.ndarray, sr: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`[B, T]` -> (`[B, embed_dim]`, `[B, num_classes]`)."""
        x = _resample(audio, sr, self.sample_rate).to(self.device)
        mel = mel_spectrogram(x, self.mel_cfg)  # [B, n_mels, frames]
        ctx = torch.autocast(self.device, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with ctx:
            emb, logits = self.model.embed_and_logits(mel)
        return emb.float().cpu(), logits.float().cpu()

    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        return self.embed_and_logits(audio, sr)[0]

    @torch.inference_mode()
    def window_logits(
        self,
        audio: torch.Tensor | np.ndarray,
        sr: int,
        seconds: float,
        hop_seconds: float,
        whole: torch.Tensor | None = None,
        batch_size: int = 64,
    ) -> torch.Tensor:
        """`[B, T]` -> `[B, num_classes]`: each class's highest logit over the clip and its windows of ``seconds``
        every ``hop_seconds`` (the last window ends with the clip); a clip no longer than a window is itself.
        ``whole``: the clips' own logits when already computed; windows run ``batch_size`` at a time."""
        x = _resample(audio, sr, self.sample_rate)
        if whole is None:
            whole = self.embed_and_logits(x, self.sample_rate)[1]
        size, hop = round(seconds * self.sample_rate), max(1, round(hop_seconds * self.sample_rate))
        length = x.shape[-1]
        if length <= size:
            return whole
        starts = sorted({*range(0, length - size + 1, hop), length - size})
        windows = torch.stack([x[:, s : s + size] for s in starts], dim=1).flatten(0, 1)  # [B * W, size]
        logits = torch.cat(
            [
                self.embed_and_logits(windows[i : i + batch_size], self.sample_rate)[1]
                for i in range(0, len(windows), batch_size)
            ]
        )
        return torch.maximum(whole, logits.view(len(x), len(starts), -1).amax(dim=1))


class ClapEmbedder:
    """The built-in `AudioTextContrastive`: audio and prompt embeddings in one space (CLAP score).

    `text_encoder` is any `soundsmith.text.TextEncoder`; built from `model.config.text_encoder` when None.
    `bf16=True` runs the audio CNN under CPU bf16 autocast (as `TaggerEmbedder`); text stays float32.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        text_encoder: object | None = None,
        device: str = "cpu",
        bf16: bool = False,
    ) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.bf16 = bf16
        self.mel_cfg = model.config.mel
        self.sample_rate = self.mel_cfg.sample_rate
        self._text_encoder = text_encoder
        self.name = f"clap-{model_identity(model)}" + ("-bf16" if bf16 else "")  # cache key part

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        """`[B, T]` -> normalised `[B, proj_dim]`."""
        x = _resample(audio, sr, self.sample_rate).to(self.device)
        mel = mel_spectrogram(x, self.mel_cfg)  # [B, n_mels, frames]
        ctx = torch.autocast(self.device, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with ctx:
            emb = self.model.encode_audio(mel)
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu()

    @torch.inference_mode()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """`B` prompts -> `[B, proj_dim]`."""
        if self._text_encoder is None:
            from soundsmith.models.registry import text_encoder

            self._text_encoder = text_encoder(self.model.config.text_encoder, self.device)
        pooled = self._text_encoder.encode(list(prompts)).pooled.to(self.device)
        return self.model.encode_text(pooled.float()).float().cpu()


def _local_dir(path: str | Path, what: str, folder: bool = True) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(
            f"{what} weights not found at {p}: pretrained {what} weights cannot be downloaded here; "
            f"save them locally (a transformers folder from save_pretrained, or the checkpoint file) and pass the path"
        )
    if folder and not p.is_dir():
        raise ModelError(
            f"{p}: expected a transformers {what} model folder (config.json + weights), got a file"
        )
    return p


class HFClapEmbedder:
    """LAION-CLAP through transformers' `ClapModel` loaded from a local folder (model + feature extractor)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from transformers import ClapFeatureExtractor, ClapModel

        p = _local_dir(path, "LAION-CLAP")
        try:
            self.model = ClapModel.from_pretrained(p, local_files_only=True).eval().to(device)
            self.features = ClapFeatureExtractor.from_pretrained(p, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/unpickling errors for bad folders
            raise ModelError(
                f"{p}: not a transformers ClapModel folder with a feature extractor ({exc})"
            ) from exc
        self.device = device
        self.sample_rate = int(self.features.sampling_rate)
        self.name = f"laion-clap-{model_identity(self.model)}"

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        x = _resample(audio, sr, self.sample_rate).numpy()
        # centre-crop to the extractor's window ourselves: its own crop ("rand_trunc") is random
        n = int(self.features.nb_max_samples)
        if x.shape[-1] > n:
            start = (x.shape[-1] - n) // 2
            x = x[:, start : start + n]
        fusion = bool(self.model.config.audio_config.enable_fusion)
        inputs = self.features(
            list(x),
            sampling_rate=self.sample_rate,
            truncation="fusion" if fusion else "rand_trunc",
            padding="repeatpad",
            return_tensors="pt",
        )
        out = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        out = out if isinstance(out, torch.Tensor) else out.pooler_output
        return out.float().cpu()


class EncodecEmbedder:
    """EnCodec encoder latents, mean-pooled over time, through transformers' `EncodecModel` (local folder)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from transformers import EncodecModel

        p = _local_dir(path, "EnCodec")
        try:
            self.model = EncodecModel.from_pretrained(p, local_files_only=True).eval().to(device)
        except Exception as exc:  # transformers raises OSError/ValueError/unpickling errors for bad folders
            raise ModelError(f"{p}: not a transformers EncodecModel folder ({exc})") from exc
        self.device = device
        self.sample_rate = int(self.model.config.sampling_rate)
        self.channels = int(self.model.config.audio_channels)
        self.name = f"encodec-{model_identity(self.model)}"

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        x = _resample(audio, sr, self.sample_rate).to(self.device)  # [B, T]
        x = x[:, None].expand(-1, self.channels, -1)  # [B, C, T]
        latents = self.model.encoder(x)  # [B, D, frames]
        return latents.mean(dim=-1).float().cpu()


class PannsEmbedder:
    """PANNs CNN14 2048-d embedding via the `panns_inference` package and a local checkpoint file."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        try:
            from panns_inference import AudioTagging
        except ImportError as exc:
            raise ModelError(
                "PANNs embeddings need the 'panns_inference' package: pip install panns_inference, "
                "then pass the local Cnn14 checkpoint as panns:/path/Cnn14_mAP=0.431.pth"
            ) from exc
        p = _local_dir(path, "PANNs", folder=False)
        self.model = AudioTagging(checkpoint_path=str(p), device=device)
        self.sample_rate = 32000
        self.name = f"panns-{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"

    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        x = _resample(audio, sr, self.sample_rate).numpy()
        _, emb = self.model.inference(x)
        return torch.as_tensor(emb, dtype=torch.float32)


class VggishEmbedder:
    """VGGish 128-d embeddings (mean over 0.96 s frames) via the `torchvggish` package and a local state dict."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        try:
            from torchvggish import vggish
        except ImportError as exc:
            raise ModelError(
                "VGGish embeddings need the 'torchvggish' package: pip install torchvggish, "
                "then pass the local weights as vggish:/path/vggish-10086976.pth"
            ) from exc
        p = _local_dir(path, "VGGish", folder=False)
        self.model = vggish.VGGish(urls={}, pretrained=False, preprocess=True, postprocess=False)
        self.model.load_state_dict(torch.load(p, map_location=device, weights_only=True), strict=False)
        self.model.eval().to(device)
        self.sample_rate = 16000
        self.name = f"vggish-{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"

    @torch.inference_mode()
    def embed(self, audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        x = _resample(audio, sr, self.sample_rate).numpy()
        return torch.stack([self.model(row, self.sample_rate).float().mean(0) for row in x]).cpu()


EXTERNAL = {
    "laion-clap": HFClapEmbedder,
    "encodec": EncodecEmbedder,
    "panns": PannsEmbedder,
    "vggish": VggishEmbedder,
}


def load_eval_model(path_or_name: str | Path, family: str) -> torch.nn.Module:
    """Load a tagger or CLAP model directory (or registered name) through the models registry."""
    from soundsmith.models.registry import load_model

    model = load_model(str(path_or_name))
    expected = {"tagger": "AudioTagger", "clap": "AudioTextContrastive"}[family]
    if type(model).__name__ != expected:
        raise ModelError(
            f"{path_or_name}: is a {type(model).__name__}, expected a {family} model ({expected})"
        )
    return model


def build_embedder(spec: str | Embedder, device: str = "cpu") -> Embedder:
    """`"tagger:<dir or name>"`, `"clap:<dir or name>"`, `"laion-clap:<dir>"`, `"encodec:<dir>"`,
    `"panns:<file>"`, `"vggish:<file>"`, or an object that already has `embed()`."""
    if not isinstance(spec, str):
        return spec
    kind, _, arg = spec.partition(":")
    if kind == "tagger":
        return TaggerEmbedder(load_eval_model(arg or "tagger", "tagger"), device=device)
    if kind == "clap":
        return ClapEmbedder(load_eval_model(arg or "clap", "clap"), device=device)
    if kind in EXTERNAL:
        if not arg:
            raise ModelError(f"embedder {spec!r}: give the local weights, e.g. {kind}:/path/to/weights")
        return EXTERNAL[kind](arg, device=device)
    valid = ", ".join(["tagger", "clap", *EXTERNAL])
    raise ModelError(f"unknown embedder {spec!r}: use one of {valid} (as kind:/local/path)")
