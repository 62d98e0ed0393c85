"""Token-LM inference: prompt -> text embeddings -> codec tokens, one pattern step at a time -> codec decoder.

``pipe = soundsmith.load(RUN)``; ``pipe("a bell rings twice", duration=4.0, seed=0)``. Beyond the shared arguments
the family takes ``temperature``, ``top_k``, ``top_p`` (``soundsmith.sampling.autoregressive``'s rule; defaults
from the model's config), ``init_audio`` (a file or samples: its tokens are the forced prefix and the model
continues them; the result is ``duration`` seconds including the prompt) and ``on_chunk(index, samples)``, called
with float32 chunks of candidate ``index`` as soon as their tokens are known (streaming: every
``config.stream_frames`` frames, decoded with ``config.stream_context`` frames of codec context on each side, so
the chunks concatenate to the returned audio; the last chunk ends the clip).

``steps`` is accepted for the common signature and ignored (as WaveNet's): the number of network calls is the
pattern's step count (``meta["lm_steps"]``). Decoding is incremental with a KV cache (one network call per step for the ``[cond, uncond]`` pair of
classifier-free guidance; ``guidance=1`` runs the conditional branch alone). Beyond ``config.context`` steps the
cache slides (relative positions make the window seamless to the network). Candidate ``i`` draws its uniforms from
``seeds[i]`` only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from soundsmith.errors import ConfigError
from soundsmith.models.token_lm import TokenLM, frames_for_steps, pattern_positions, pattern_steps, valid_mask
from soundsmith.pipelines.base import GeneratedAudio, ModelSource, Pipeline
from soundsmith.sampling.autoregressive import check_sampling_args, draw_uniforms, sample_from_logits

ChunkCallback = Callable[[int, np.ndarray], None]


class TokenLMPipeline(Pipeline):
    """``TokenLMPipeline(model)(prompt, duration=None, guidance=None, seed=0, ..., on_chunk=None, init_audio=None)``."""

    family = "token_lm"

    def __init__(self, model: TokenLM, text_encoder: Any = None, source: ModelSource | None = None) -> None:
        super().__init__(model, text_encoder=text_encoder, source=source)
        model.check_parts()
        self.default_duration = float(model.config.duration)

    def __call__(
        self, prompt: str | Sequence[str] = "", duration: float | None = None, **kwargs: Any
    ) -> GeneratedAudio | list[GeneratedAudio]:
        """As :meth:`Pipeline.__call__`; ``init_audio`` (a path or samples) is read once here."""
        if kwargs.get("init_audio") is not None:
            kwargs["init_audio"] = self.read_audio(kwargs["init_audio"])
        return super().__call__(prompt, duration, **kwargs)

    def read_audio(self, audio: str | Path | np.ndarray | Tensor) -> np.ndarray:
        """A file (resampled to the model's rate) or mono samples ``[T]`` -> float32 ``[T]``."""
        if isinstance(audio, (str, Path)):
            from soundsmith.audio import load_audio

            return load_audio(audio, sample_rate=self.sample_rate)[0]
        samples = np.asarray(audio.detach().cpu() if isinstance(audio, Tensor) else audio, dtype=np.float32)
        samples = samples[0] if samples.ndim == 2 and samples.shape[0] == 1 else samples
        if samples.ndim != 1 or samples.size == 0 or not np.isfinite(samples).all():
            raise ConfigError(
                f"init_audio must be a file or finite mono samples [T], got shape {samples.shape}"
            )
        return samples

    def generate(
        self,
        prompt: str,
        duration: float,
        *,
        steps: int | None,
        guidance: float | None,
        seeds: list[int],
        progress: bool,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        init_audio: np.ndarray | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        model, c = self.model, self.model.config
        K, V = c.net.num_codebooks, c.net.codebook_size
        temperature = c.temperature if temperature is None else float(temperature)
        top_k = c.top_k if top_k is None else int(top_k)
        top_p = c.top_p if top_p is None else float(top_p)
        guidance = c.guidance if guidance is None else float(guidance)
        check_sampling_args(temperature, min(top_k, V), top_p, V)
        del steps  # accepted for the common signature and ignored: one network call per pattern step, always
        if not (math.isfinite(guidance) and guidance >= 0):
            raise ConfigError(f"guidance={guidance!r} must be a number >= 0 (1 = no guidance)")
        if duration > c.max_duration:
            raise ConfigError(f"duration={duration} s is over this model's {c.max_duration:g} s limit")

        started = time.perf_counter()  # time to the first streamed chunk counts from here

        # 1. sizes: frames to generate, pattern steps, the forced prefix of an audio prompt
        length = int(round(duration * self.sample_rate))
        T = model.frames(length)
        S = pattern_steps(c.pattern, K, T)
        device = self.device
        prefix = torch.zeros(1, K, 0, dtype=torch.long, device=device)
        if init_audio is not None:
            if len(init_audio) > length:
                raise ConfigError(
                    f"init_audio lasts {len(init_audio) / self.sample_rate:.2f} s, longer than duration={duration} s; "
                    "the duration includes the prompt"
                )
            prefix = model.audio_to_codes(torch.from_numpy(init_audio)[None].to(device))[
                ..., :T
            ]  # [1, K, Tp]
        Tp = prefix.shape[-1]

        # 2. text: the conditional and (with guidance) the null branch, in one batch
        text, mask = model.encode_text([prompt or "silence"])  # an empty prompt uses the null text alone
        guided = guidance != 1.0
        drop = torch.tensor([not prompt] + ([True] if guided else []), device=device)
        text, mask = text.expand(len(drop), -1, -1), mask.expand(len(drop), -1)

        # 3. one candidate per seed, step by step with the KV cache
        first_chunk_s: list[float] = []
        clips = []
        for index, seed in enumerate(seeds):
            u = (
                torch.from_numpy(draw_uniforms(S * K, seeds=[seed])[0]).view(S, K).to(device)
            )  # randomness first
            codes = self._decode_steps(
                text,
                mask,
                drop,
                guidance,
                u,
                prefix,
                T,
                (temperature, top_k, top_p),
                index,
                on_chunk,
                length,
                first_chunk_s,
                started,
            )
            clips.append(model.codes_to_audio(codes, length)[0])  # [length]
        audio = torch.stack(clips).float().cpu().numpy()  # [N, length]
        meta = {
            "pattern": c.pattern,
            "frames": T,
            "lm_steps": S,
            "guidance": guidance,
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "prompt_frames": Tp,
        }
        if first_chunk_s:
            meta["first_chunk_s"] = round(first_chunk_s[0], 4)
        return audio.astype(np.float32), meta

    @torch.no_grad()
    def _decode_steps(
        self,
        text: Tensor,
        mask: Tensor,
        drop: Tensor,
        guidance: float,
        u: Tensor,
        prefix: Tensor,
        T: int,
        sampling: tuple[float, int, float],
        index: int,
        on_chunk: ChunkCallback | None,
        length: int,
        first_chunk_s: list[float],
        started: float,
    ) -> Tensor:
        """The codes ``[1, K, T]`` of one candidate (streamed through ``on_chunk`` as frames complete)."""
        model, c = self.model, self.model.config
        K, special, device = c.net.num_codebooks, c.special, self.device
        S = pattern_steps(c.pattern, K, T)
        valid = valid_mask(c.pattern, K, T, device)  # [K, S]
        seq = torch.full((1, K, S), special, dtype=torch.long, device=device)
        Tp = prefix.shape[-1]
        known = torch.zeros(K, S, dtype=torch.bool, device=device)
        if Tp:
            pos = pattern_positions(c.pattern, K, T, device)[:, :Tp]  # [K, Tp]
            seq[0].scatter_(1, pos, prefix[0])
            known.scatter_(1, pos, True)
        # steps fully given by the prompt are fed in one prefill call
        free = (valid & ~known).any(0)  # [S]
        s0 = int(free.float().argmax()) if bool(free.any()) else S
        cache = model.new_cache()
        start = torch.full((1, K, 1), special, dtype=torch.long, device=device)
        cols = torch.cat([start, seq[..., :s0]], -1) if s0 < S else None
        B = len(drop)
        temperature, top_k, top_p = sampling
        emitted = 0
        for s in range(s0, S):
            if cols is not None:
                logits = model(cols.expand(B, -1, -1), text, mask, drop, cache)[:, :, -1]  # [B, K, V]
                if B == 2:
                    logits = logits[1:] + guidance * (logits[:1] - logits[1:])
                drawn = sample_from_logits(logits[0].float(), u[s], temperature, top_k, top_p)  # [K]
                step = torch.where(known[:, s], seq[0, :, s], torch.where(valid[:, s], drawn, special))
                seq[0, :, s] = step
            cols = seq[..., s : s + 1]
            if on_chunk is not None:
                emitted = self._stream(
                    seq, T, s + 1, emitted, index, on_chunk, length, first_chunk_s, started
                )
        if on_chunk is not None and emitted < T:
            self._stream(seq, T, S, emitted, index, on_chunk, length, first_chunk_s, started)
        return seq.gather(2, pattern_positions(c.pattern, K, T, device)[None])  # [1, K, T]

    def _stream(
        self,
        seq: Tensor,
        T: int,
        done_steps: int,
        emitted: int,
        index: int,
        on_chunk: ChunkCallback,
        length: int,
        first_chunk_s: list[float],
        started: float,
    ) -> int:
        """Emit the frames ``[emitted, ready)`` once enough are complete; returns the new ``emitted``."""
        c, model = self.model.config, self.model
        K, ctx = c.net.num_codebooks, c.stream_context
        complete = min(T, frames_for_steps(c.pattern, K, done_steps))
        final = complete == T
        ready = complete if final else max(0, complete - ctx)
        if ready - emitted < (1 if final else c.stream_frames):
            return emitted
        lo, hi = max(0, emitted - ctx), min(complete, ready + ctx)
        pos = pattern_positions(c.pattern, K, T, seq.device)[:, lo:hi]  # [K, hi - lo]
        codes = seq.gather(2, pos[None])  # [1, K, hi - lo]
        hop = model.codec.hop_length
        audio = model.codes_to_audio(codes)[0]  # [(hi - lo) * hop]
        chunk = audio[(emitted - lo) * hop : (ready - lo) * hop]
        end = min(length, ready * hop) - emitted * hop
        on_chunk(index, chunk[: max(0, end)].float().cpu().numpy())
        if not first_chunk_s:
            first_chunk_s.append(time.perf_counter() - started)
        return ready
