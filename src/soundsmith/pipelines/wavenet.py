"""WaveNet inference: prompt (caption and/or category) in, 16 kHz waveform out, one sample at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.audio import mu_law_decode, mu_law_encode, save_audio
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.wavenet import WaveNet
from soundsmith.pipelines import GeneratedAudio, check_request
from soundsmith.sampling.wavenet import generate_wavenet


class WaveNetPipeline:
    """``WaveNetPipeline(model, text_encoder=None)(prompt, duration=1.0, seed=0, ...) -> GeneratedAudio``.

    Conditioning comes from what the model was trained with: the prompt through the text encoder (when the
    config names one), a category (``gc_id``: an int or a name from ``config.labels``), a mel spectrogram
    ``[lc_channels, frames]`` or ``[N, lc_channels, frames]``, and/or a ``prime`` waveform ``[T]`` (float, at
    the model's sample rate) to continue.
    """

    def __init__(self, model: WaveNet, text_encoder: Any = None) -> None:
        self.model = model.eval()
        c = model.config
        if text_encoder is None and c.text_encoder:
            from soundsmith.text import build_text_encoder

            text_encoder = build_text_encoder(c.text_encoder)
        if text_encoder is not None and text_encoder.dim != c.text_dim:
            raise ModelError(
                f"text encoder gives {text_encoder.dim}-d embeddings, the model expects text_dim={c.text_dim}"
            )
        self.text_encoder = text_encoder

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

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
    def __call__(
        self,
        prompt: str = "",
        duration: float = 1.0,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        num_candidates: int = 1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        gc_id: int | str | None = None,
        mel: torch.Tensor | np.ndarray | None = None,
        prime: np.ndarray | torch.Tensor | None = None,
        save_every: float | None = None,
        save_path: str | Path | None = None,
        progress: bool = True,
        method: str = "auto",
    ) -> GeneratedAudio:
        """Generate ``num_candidates`` clips of ``duration`` seconds (new audio, the prime excluded).

        ``steps``/``guidance`` are accepted for the common pipeline signature and ignored (WaveNet takes one step
        per sample and has no guidance). Candidate ``i`` uses seed ``seed + i``, so candidates equal single runs.
        ``save_every`` seconds of new audio, the partial result is written to ``save_path`` (candidate ``i`` of
        several to ``stem-i.wav``).
        """
        c = self.model.config
        device = self.model.embed.weight.device
        check_request(prompt, duration, num_candidates)
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
                    save_audio(target, row, c.sample_rate, metadata={"prompt": prompt, "seed": str(seed + i)})

        # 3. sample, one code at a time (the engine's step loop lives in soundsmith.sampling.wavenet)
        codes = generate_wavenet(
            self.model,
            n_samples,
            seed=[seed + i for i in range(num_candidates)],
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
            "family": "wavenet",
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "gc_id": gc_id,
            "prime_samples": 0 if prime_codes is None else int(prime_codes.numel()),
        }
        return GeneratedAudio(audio=audio, sample_rate=c.sample_rate, prompt=prompt, seed=seed, meta=meta)
