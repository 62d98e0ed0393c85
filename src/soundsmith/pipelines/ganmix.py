"""GANmix inference: prompt -> text embedding (pooled; + tokens for the transformer generator) -> generator (one
forward pass) -> VAE decoder -> vocoder.

``pipe = soundsmith.load(RUN)``; ``pipe("a dog barks", duration=2.0, seed=0)``. ``steps`` and ``guidance`` are
accepted for the common signature and ignored (a GAN makes a clip in one pass and has no guidance). Beyond the
shared arguments the family takes ``truncation`` (the truncation trick: noise clamped to ``[-t, t]``; lower =
more typical, less varied output).

Durations: the fully connected (thesis) generator makes latents of one fixed length (its training crop); a
shorter clip is the start of it, a longer one repeats it along time (``model.config.long_clips``). The
convolutional generator makes the requested length directly.

:meth:`GANmixPipeline.interpolate` walks the latent space between two prompts (text embeddings, linearly, with
one noise draw) or two seeds (noise, spherically, with one prompt); :func:`save_interpolation` writes the clips as
WAVs plus a spectrogram strip PNG (``soundsmith ganmix interpolate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from soundsmith.errors import ConfigError
from soundsmith.models.ganmix import GANmix, slerp
from soundsmith.pipelines.base import GeneratedAudio, check_request
from soundsmith.pipelines.latent_audio import LatentAudioPipeline


class GANmixPipeline(LatentAudioPipeline):
    """``GANmixPipeline(model)(prompt, duration=None, seed=0, num_candidates=1, truncation=None)``."""

    family = "ganmix"
    prompt_example = "a dog barks"
    model: GANmix

    def _check(self, duration: float, truncation: Any) -> None:
        self.check_duration(duration)
        if truncation is not None and (
            isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not truncation > 0
        ):
            raise ConfigError(f"truncation={truncation!r} must be a positive number (e.g. 1.5) or None")

    def _text(self, prompt: str) -> dict[str, Tensor]:
        self.check_prompt(prompt)
        return self.model.text_condition([prompt])  # pooled [1, D] (+ tokens [1, L, D], mask [1, L])

    def _render(self, noise: Tensor, text: dict[str, Tensor], num_samples: int) -> np.ndarray:
        """Noise ``[B, *noise_shape]`` + text (:meth:`GANmix.text_condition`) -> float32 audio ``[B, num_samples]``."""
        model = self.model
        # 2. the generator: one forward pass
        frames = model.generation_frames(num_samples)
        latents = model(noise, text["pooled"], frames, text.get("tokens"), text.get("mask"))
        # 3. the clip's latent length (crop or tile the fixed-length output), 4. VAE decode + vocoder
        latents = model.fit_frames(latents, model.latent_frames(num_samples))  # [B, C, T']
        return self.decode(latents, num_samples)

    def _noise(self, seed: int, num_samples: int, truncation: float | None) -> Tensor:
        noise = self.model.noise(seed, self.model.generation_frames(num_samples))  # [1, *noise_shape]
        return noise if truncation is None else noise.clamp(-truncation, truncation)

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
        truncation: float | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``len(seeds)`` clips ``[N, round(duration * sample_rate)]``; ``steps``/``guidance`` are ignored."""
        self._check(duration, truncation)
        num_samples = self.num_samples(duration)
        # 1. text: the pooled embedding of the prompt (and its tokens, for the transformer generator)
        text = self._text(prompt)
        # one candidate at a time: candidate i depends on seeds[i] alone, bit for bit
        rows = [self._render(self._noise(s, num_samples, truncation), text, num_samples)[0] for s in seeds]
        meta: dict[str, Any] = {"duration": duration, "candidate_seeds": list(seeds)}
        if truncation is not None:
            meta["truncation"] = float(truncation)
        return np.stack(rows), meta

    @torch.no_grad()
    def interpolate(
        self,
        a: str | int,
        b: str | int,
        steps: int = 8,
        *,
        prompt: str | None = None,
        seed: int = 0,
        duration: float | None = None,
    ) -> GeneratedAudio:
        """``steps`` clips on the straight path from ``a`` to ``b``: ``audio [steps, T]`` (row 0 = ``a``).

        Two prompts (``a``, ``b`` str): their text embeddings (pooled, and tokens for the transformer generator,
        padded to one length) are mixed linearly, the noise is ``seed``'s.
        Two seeds (``a``, ``b`` int): their noises are mixed spherically (slerp), the text is ``prompt``'s.
        """
        duration = self.default_duration if duration is None else duration
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ConfigError(f"steps={steps!r} must be an integer >= 2 (the two ends included)")
        num_samples = self.num_samples(duration)
        ts = [i / (steps - 1) for i in range(steps)]
        if isinstance(a, str) and isinstance(b, str):
            for p in (a, b):
                check_request(p, duration, 1)
            self._check(duration, None)
            ta, tb = self._text(a), self._text(b)
            noise = self._noise(seed, num_samples, None)
            rows = [self._render(noise, mix_text(ta, tb, t), num_samples)[0] for t in ts]
            label, meta = f"{a} -> {b}", {"interpolation": "prompts", "a": a, "b": b, "seed": seed}
        elif (
            isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool)
        ):
            if prompt is None:
                raise ConfigError("interpolating between two seeds needs a prompt (prompt=...)")
            check_request(prompt, duration, 1)
            self._check(duration, None)
            text = self._text(prompt)
            na, nb = self._noise(a, num_samples, None), self._noise(b, num_samples, None)
            rows = [self._render(slerp(na, nb, t), text, num_samples)[0] for t in ts]
            label, meta = prompt, {"interpolation": "seeds", "a": a, "b": b}
        else:
            raise ConfigError(f"interpolate between two prompts or two integer seeds, got {a!r} and {b!r}")
        meta = {**self.provenance(), **meta, "duration": duration, "steps_between": steps}
        seed_out = seed if isinstance(a, str) else int(a)
        return GeneratedAudio(np.stack(rows), self.sample_rate, label, seed_out, meta)


def mix_text(a: dict[str, Tensor], b: dict[str, Tensor], t: float) -> dict[str, Tensor]:
    """``(1 - t) a + t b`` of two prompts' text (:meth:`GANmix.text_condition`, one row each); token sequences are
    zero-padded to the longer one, and a position is kept where either prompt has a token."""
    out = {"pooled": (1 - t) * a["pooled"] + t * b["pooled"]}
    if "tokens" in a:
        L = max(a["tokens"].shape[1], b["tokens"].shape[1])

        def pad(x: Tensor) -> Tensor:  # [1, L_x, ...] -> [1, L, ...]
            return torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, L - x.shape[1]))

        out["tokens"] = (1 - t) * pad(a["tokens"]) + t * pad(b["tokens"])
        out["mask"] = (pad(a["mask"].float()) + pad(b["mask"].float())) > 0
    return out


def spectrogram_strip(audio: np.ndarray, sample_rate: int, n_mels: int = 64) -> np.ndarray:
    """The log-mel spectrograms of clips ``[N, T]`` side by side, one image ``[n_mels, N * (frames + 2)]`` in dB
    (each clip's columns followed by a 2-column gap at the floor), low frequencies in row 0."""
    import librosa

    n_fft = 1024 if sample_rate >= 32000 else 512
    panels = []
    for clip in np.asarray(audio, dtype=np.float32):
        clip = np.pad(clip, (0, max(0, n_fft - len(clip))))
        mel = librosa.feature.melspectrogram(
            y=clip, sr=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, fmax=sample_rate / 2
        )
        db = librosa.power_to_db(mel, ref=1.0, top_db=None).clip(-80.0, None)
        panels.append(np.pad(db, ((0, 0), (0, 2)), constant_values=-80.0))
    return np.concatenate(panels, axis=1)


def save_interpolation(result: GeneratedAudio, out_dir: str | Path) -> list[Path]:
    """Write ``step-00.wav`` ... and ``strip.png`` (the spectrogram strip) into ``out_dir``; returns the paths."""
    from matplotlib import image

    from soundsmith.audio import save_audio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, clip in enumerate(result.audio):
        meta = {"prompt": result.prompt, "step": f"{i}/{len(result.audio) - 1}"}
        meta.update({k: str(v) for k, v in result.meta.items()})
        paths.append(out / f"step-{i:02d}.wav")
        save_audio(paths[-1], clip, result.sample_rate, metadata=meta)
    strip = np.repeat(spectrogram_strip(result.audio, result.sample_rate), 3, axis=0)  # 3 pixels per mel band
    png = out / "strip.png"
    image.imsave(png, strip, cmap="magma", origin="lower", vmin=-80.0, vmax=max(-79.0, float(strip.max())))
    return [*paths, png]
