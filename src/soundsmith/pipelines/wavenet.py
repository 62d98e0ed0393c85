"""WaveNet inference: prompt (caption and/or category) in, 16 kHz waveform out, one sample at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.audio import mu_law_decode, mu_law_encode, save_audio
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.wavenet import WaveNet
from soundsmith.pipelines.base import ModelSource, Pipeline
from soundsmith.sampling.wavenet import generate_wavenet


class WaveNetPipeline(Pipeline):
    """``WaveNetPipeline(model, text_encoder=None)(prompt, duration=1.0, seed=0, ...) -> GeneratedAudio``.

    Conditioning comes from what the model was trained with: the prompt through the text encoder (when the
    config names one), a category (``gc_id``: an int or a name from ``config.labels``), a mel spectrogram
    ``[lc_channels, frames]`` or ``[N, lc_channels, frames]``, and/or a ``prime`` waveform ``[T]`` (float, at
    the model's sample rate) to continue. Request checks, seeds, several prompts and provenance come from
    :class:`~soundsmith.pipelines.base.Pipeline`.
    """

    family = "wavenet"

    def __init__(self, model: WaveNet, text_encoder: Any = None, source: ModelSource | None = None) -> None:
        super().__init__(model, text_encoder=text_encoder, source=source)
        c = model.config
        if self.text_encoder is not None and self.text_encoder.dim != c.text_dim:
            raise ModelError(
                f"text encoder gives {self.text_encoder.dim}-d embeddings, the model expects text_dim={c.text_dim}"
            )

    def _gc_ids(self, gc_id: int | str | None) -> torch.Tensor | None:
        c = self.model.config
        if gc_id is None:
            return None
        if c.gc_cardinality == 0:
            raise ConfigError("gc_id was given but this WaveNet has no categories (gc_cardinality=0)")
        if isinstance(gc_id, str):
            if gc_id not in c.labels:
                raise ConfigError(f"gc_id={gc_id!r} is not one of the model's labels: {c.labels}")
            gc_id = c.labels.index(gc_id)
        if not 0 <= int(gc_id) < c.gc_cardinality:
            raise ConfigError(f"gc_id={gc_id} out of range: use 0..{c.gc_cardinality - 1} or a label name")
        return torch.tensor([int(gc_id)])

    @torch.no_grad()
    def generate(
        self,
        prompt: str,
        duration: float,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        seeds: list[int],
        progress: bool = True,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        gc_id: int | str | None = None,
        mel: torch.Tensor | np.ndarray | None = None,
        prime: np.ndarray | torch.Tensor | None = None,
        save_every: float | None = None,
        save_path: str | Path | None = None,
        method: str = "auto",
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``len(seeds)`` clips of ``duration`` seconds (new audio, the prime excluded).

        ``steps``/``guidance`` are accepted for the common pipeline signature and ignored (WaveNet takes one step
        per sample and has no guidance). ``save_every`` seconds of new audio, the partial result is written to
        ``save_path`` (candidate ``i`` of several to ``stem-i.wav``).
        """
        c = self.model.config
        device = self.model.embed.weight.device
        if save_every is not None and save_path is None:
            raise ConfigError("save_every needs save_path (where to write the partial audio)")
        n_samples = int(round(duration * c.sample_rate))

        # 1. conditioning: caption embedding, category, mel, prime codes
        text_emb = None
        if self.text_encoder is not None and prompt and prompt.strip():
            text_emb = self.text_encoder.encode([prompt]).pooled.to(device)  # [1, text_dim]
        gc_ids = self._gc_ids(gc_id)
        if mel is not None:
            mel = torch.as_tensor(np.asarray(mel) if not isinstance(mel, torch.Tensor) else mel).float()
            mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        prime_codes = None
        if prime is not None:
            prime_audio = torch.as_tensor(np.asarray(prime, dtype=np.float32)).reshape(-1)
            if prime_audio.numel() == 0:
                raise ConfigError("prime is empty; give at least one sample of audio to continue")
            prime_codes = mu_law_encode(prime_audio.clamp(-1, 1), c.quantization_channels)  # [P]

        # 2. partial saves
        callback = None
        every = None
        if save_every is not None:
            every = max(1, int(round(save_every * c.sample_rate)))
            path = Path(save_path)

            def callback(codes: torch.Tensor) -> None:
                audio = mu_law_decode(codes, c.quantization_channels).numpy()
                for i, row in enumerate(audio):
                    target = path if len(audio) == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
                    save_audio(target, row, c.sample_rate, metadata={"prompt": prompt, "seed": str(seeds[i])})

        # 3. sample, one code at a time (the engine's step loop lives in soundsmith.sampling.wavenet)
        codes = generate_wavenet(
            self.model,
            n_samples,
            seed=list(seeds),
            prime=prime_codes,
            gc_ids=gc_ids,
            text_emb=text_emb,
            mel=mel,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            method=method,
            callback=callback,
            callback_every=every,
            progress=progress,
        )  # [N, T]

        # 4. decode mu-law to float audio
        audio = mu_law_decode(codes, c.quantization_channels).numpy().astype(np.float32)
        meta = {
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "gc_id": gc_id,
            "prime_samples": 0 if prime_codes is None else int(prime_codes.numel()),
        }
        return audio, meta


def generate_tf_wavenet(
    checkpoint: str | Path,
    wav_out_path: str | Path,
    samples: int = 16000,
    save_every: int | None = None,
    fast_generation: bool = True,
    temperature: float = 1.0,
    gc_channels: int | None = None,
    gc_cardinality: int | None = None,
    gc_id: int | str | None = None,
    wav_seed: str | Path | None = None,
    seed: int = 0,
    prompt: str | None = None,
) -> list[Path]:
    """tensorflow-wavenet ``generate.py``: ``samples`` samples from a run or model directory to ``wav_out_path``.

    ``gc_channels``/``gc_cardinality``, when given, must match the model's; ``gc_id`` is a category id or name;
    ``wav_seed`` primes the generation; ``save_every`` (samples) writes the partial WAV as it grows.
    """
    from soundsmith.pipelines.loader import load_pipeline

    pipe = load_pipeline(checkpoint)
    if not isinstance(pipe, WaveNetPipeline):
        raise ConfigError(f"{checkpoint}: a {pipe.family} model, not a WaveNet")
    c = pipe.model.config
    if gc_channels is not None and gc_channels != c.gc_channels:
        raise ConfigError(f"--gc_channels {gc_channels} does not match the model's {c.gc_channels}")
    if gc_cardinality is not None and gc_cardinality != c.gc_cardinality:
        raise ConfigError(f"--gc_cardinality {gc_cardinality} does not match the model's {c.gc_cardinality}")
    if samples <= 0:
        raise ConfigError(f"--samples {samples} must be positive")
    if save_every is not None and save_every < 0:
        raise ConfigError(f"--save_every {save_every} must be a positive number of samples (0: off)")
    if isinstance(gc_id, str) and gc_id.lstrip("-").isdigit():
        gc_id = int(gc_id)
    prime = None
    if wav_seed:
        from soundsmith.audio import load_audio

        prime, _ = load_audio(wav_seed, sample_rate=c.sample_rate)
    result = pipe(
        prompt or "",
        duration=samples / c.sample_rate,
        seed=seed,
        temperature=temperature,
        gc_id=gc_id,
        prime=prime,
        save_every=save_every / c.sample_rate if save_every else None,
        save_path=wav_out_path if save_every else None,
        method="auto" if fast_generation else "naive",
    )
    return result.save(wav_out_path)
