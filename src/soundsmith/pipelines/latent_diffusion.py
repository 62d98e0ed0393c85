"""Latent-diffusion inference: prompt -> text embeddings -> denoised mel-VAE latents -> log-mel -> waveform.

``pipe = soundsmith.load("default")``; ``pipe("a flute plays a high soft note", duration=4.0)``. Beyond the
shared arguments (``steps``, ``guidance``, ``seed``, ``num_candidates``) the family takes ``negative_prompt``
(the unconditional branch of classifier-free guidance), ``init_audio`` + ``strength`` (audio-to-audio by partial
noising; ``strength=0`` gives back the init audio's VAE + vocoder round trip) and ``inpaint=(start_s, end_s)``
(regenerate that range of ``init_audio``, keep the rest). ``num_candidates > 1`` re-ranks the candidates by the
CLAP-style text-audio score (best first; ``meta["candidate_seeds"]`` and ``meta["clap_scores"]`` follow the order).

LoRA adapters (``soundsmith finetune --method lora``, docs/finetune.md) attach to the denoiser with
:meth:`LatentDiffusionPipeline.load_adapter` (several at once, each with a scale from 0 to 1); an adapter made on
another base model (its ``adapter.json`` names the base's weights hash) is refused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from soundsmith.audio.dsp import mel_spectrogram, shift_log_mel
from soundsmith.errors import ConfigError, ModelError
from soundsmith.eval.prompt_parse import asked_loudness
from soundsmith.models.latent_diffusion import COMPUTES, LatentDiffusion
from soundsmith.nn.int8 import int8_available, int8_copy
from soundsmith.pipelines.base import GeneratedAudio, ModelSource
from soundsmith.pipelines.compose import asked_count, fade_cuts, has_event, mix_scene, plan_scene, sound_kind
from soundsmith.pipelines.latent_audio import (
    LatentAudioPipeline,
    hold_to_dynamics,
    limit_peak,
    raise_to_floor,
)
from soundsmith.pipelines.tune import (
    DIRECTION_TRIES,
    ONCE,
    PITCH_REDRAW_SEMITONES,
    asked_direction,
    asked_instrument_register,
    asked_pitch,
    cut_to_direction,
    direction_contour,
    measure_direction,
    measure_note,
    note_error,
    register_error,
)
from soundsmith.pipelines.tune import tune as tune_note
from soundsmith.sampling.diffusion import DiffusionSampler, NoiseSchedule

DEFAULT_STRENGTH = 0.6  # audio-to-audio without an explicit strength: keep the init audio's broad shape
AudioInput = str | Path | np.ndarray | Tensor

log = logging.getLogger(__name__)

# (tokens [1, L, D], mask [1, L], pooled [1, D], drop [1]): one branch of the guided batch
Branch = tuple[Tensor, Tensor, Tensor, Tensor]


class LatentDiffusionPipeline(LatentAudioPipeline):
    """``LatentDiffusionPipeline(model)(prompt, duration=None, steps=None, guidance=None, seed=0, ...)``.

    ``steps``, ``guidance`` and ``duration`` default to the model's config (``sampler`` too, overridable per call).
    ``reranker``: what scores candidates, an object with ``embed(audio [N, T], sr) -> [N, D]`` and
    ``embed_text(prompts) -> [N, D]`` (``soundsmith.eval.embedders.ClapEmbedder``), a CLAP model name or directory,
    or None for the shipped ``clap`` (loaded on first use).
    """

    family = "latent_diffusion"
    prompt_example = "a flute plays a high soft note"

    def __init__(
        self,
        model: LatentDiffusion,
        text_encoder: Any = None,
        source: ModelSource | None = None,
        reranker: Any = None,
    ) -> None:
        super().__init__(model, text_encoder=text_encoder, source=source)
        self.schedule = NoiseSchedule(**model.config.schedule_kwargs(sampling=True))
        self._reranker = reranker
        self._adapters: dict[str, dict[str, Any]] = {}  # name -> path, sha256, scale (provenance)
        self._int8_denoiser: nn.Module | None = None  # the denoiser's int8 twin (compute="int8")
        self._int8_lock = threading.Lock()  # a server's workers may ask for the twin at once: build it once

    def __call__(
        self, prompt: str | Sequence[str] = "", duration: float | None = None, **kwargs: Any
    ) -> GeneratedAudio | list[GeneratedAudio]:
        """As :meth:`Pipeline.__call__`; with ``init_audio`` and no ``duration``, the init audio's length."""
        if kwargs.get("init_audio") is not None:
            kwargs["init_audio"] = self.read_audio(kwargs["init_audio"])
            if duration is None:
                duration = len(kwargs["init_audio"]) / self.sample_rate
        return super().__call__(prompt, duration, **kwargs)

    # -- inputs ------------------------------------------------------------------------------------------------

    def read_audio(self, audio: AudioInput) -> np.ndarray:
        """An audio file (resampled to the model's rate) or samples ``[T]`` at that rate -> float32 ``[T]``."""
        if isinstance(audio, (str, Path)):
            from soundsmith.audio import load_audio

            samples, _ = load_audio(audio, sample_rate=self.sample_rate)  # AudioError names the file
            return samples
        if isinstance(audio, Tensor):
            audio = audio.detach().cpu().numpy()
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim == 2 and samples.shape[0] == 1:
            samples = samples[0]
        if samples.ndim != 1 or samples.size == 0 or not np.isfinite(samples).all():
            raise ConfigError(
                f"init_audio must be a file or finite mono samples [T] at {self.sample_rate} Hz, "
                f"got shape {samples.shape}"
            )
        return samples

    def _check(self, duration: float, steps: Any, guidance: Any, strength: Any) -> None:
        self.check_duration(duration)
        if isinstance(steps, bool) or not (isinstance(steps, int) and steps >= 1):
            raise ConfigError(f"steps={steps!r} must be an integer >= 1")
        if isinstance(guidance, bool) or not (
            isinstance(guidance, (int, float)) and math.isfinite(guidance) and guidance >= 0
        ):
            raise ConfigError(f"guidance={guidance!r} must be a number >= 0 (1 = no guidance)")
        if strength is not None and (
            isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0
        ):
            raise ConfigError(
                f"strength={strength!r} must be a number from 0 (keep the input) to 1 (ignore it)"
            )

    def _inpaint_mask(self, inpaint: Any, duration: float, frames: int) -> Tensor:
        """``(start_s, end_s)`` -> bool ``[1, 1, 1, T']``, True on the latent frames to regenerate."""
        try:
            start, end = (float(v) for v in inpaint)
        except (TypeError, ValueError):
            raise ConfigError(f"inpaint={inpaint!r} must be a (start, end) pair of seconds") from None
        if not (0.0 <= start < end <= duration + 1e-9):
            raise ConfigError(
                f"inpaint range {start:g}-{end:g} s must satisfy 0 <= start < end <= {duration:g} s (the clip)"
            )
        per_second = (
            self.sample_rate / self.model.mel_config().hop_length / self.model.vae.config.time_downsample
        )
        lo, hi = math.floor(start * per_second), min(frames, math.ceil(end * per_second))
        mask = torch.zeros(1, 1, 1, frames, dtype=torch.bool)
        mask[..., lo : max(hi, lo + 1)] = True
        return mask

    def _branch(self, prompt: str, drop: bool) -> Branch:
        tokens, mask, pooled = self.model.encode_text([prompt])
        return tokens, mask, pooled, torch.tensor([drop])

    @staticmethod
    def _batch(branches: list[Branch], n: int, device: torch.device) -> Branch:
        """Stack branches (each repeated ``n`` times) into one batch, text padded to the longest."""
        length = max(b[0].shape[1] for b in branches)
        tokens, masks, pooled, drops = [], [], [], []
        for tok, mask, pool, drop in branches:
            pad = length - tok.shape[1]
            tokens.append(torch.nn.functional.pad(tok, (0, 0, 0, pad)).expand(n, -1, -1))
            masks.append(torch.nn.functional.pad(mask, (0, pad)).expand(n, -1))
            pooled.append(pool.expand(n, -1))
            drops.append(drop.expand(n))
        return tuple(torch.cat(x).to(device) for x in (tokens, masks, pooled, drops))  # type: ignore[return-value]

    # -- generation --------------------------------------------------------------------------------------------

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
        negative_prompt: str | None = None,
        init_audio: AudioInput | None = None,
        strength: float | None = None,
        inpaint: tuple[float, float] | None = None,
        sampler: str | None = None,
        rerank: bool = True,
        compose: bool | None = None,
        tune: bool | None = None,
        compute: str | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``len(seeds)`` clips ``[N, round(duration * sample_rate)]``; see the module docstring.

        ``compose`` (default: the config's): a layered prompt is generated part by part, the parts denoised
        together as one batch, then mixed (:mod:`soundsmith.pipelines.compose`); not with ``init_audio``. A
        ``negative_prompt`` is every part's unconditional branch, the bed's included. ``tune`` (default: the
        config's): a part whose prompt names one held note, or a sound event's register, is shifted to it when
        its pitch is off, and one asked to rise or fall that does not move that way is drawn again
        (:mod:`soundsmith.pipelines.tune`); not with ``init_audio``. ``compute`` (default: the config's):
        ``float32`` or ``int8`` matrix products in the denoiser (CPU only, without adapters; ``meta["compute"]``
        records what ran).
        """
        model, c = self.model, self.model.config
        steps = c.steps if steps is None else steps
        kind_guidance = c.kind_guidance if guidance is None else {}  # a call's guidance is every part's
        guidance = c.guidance if guidance is None else guidance
        self.check_prompt(prompt)
        self._check(duration, steps, guidance, strength)
        if negative_prompt is not None and not (isinstance(negative_prompt, str) and negative_prompt.strip()):
            raise ConfigError("negative_prompt is empty; give text to steer away from, or leave it out")
        if init_audio is None and (strength is not None or inpaint is not None):
            raise ConfigError("strength and inpaint work on an input: give init_audio (a file or samples)")
        compose = c.compose if compose is None else compose
        tune = c.tune if tune is None else tune
        for name, value in (("compose", compose), ("tune", tune)):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} must be true or false")
        # after the checks: a request refused for its input does not build the int8 twin first
        net, compute = self.denoiser_for(c.compute if compute is None else compute)
        tune = tune and init_audio is None
        plan = plan_scene(prompt, duration) if compose and init_audio is None else None
        parts = plan.prompts if plan is not None else [prompt]
        num_samples = self.num_samples(duration)
        # a text-to-audio clip shorter than the trained context: generate the context, keep its most active part
        context = None if c.context_seconds is None else self.num_samples(c.context_seconds)
        gen_samples = context if init_audio is None and context and num_samples < context else num_samples
        shape = (len(parts), *model.latent_shape(gen_samples))  # [P, C, F, T']: one row per part
        window = model.latent_frames(context) if context else None
        device, n = self.device, len(seeds)

        # 1. text: each part's prompt, and the unconditional branch (the negative prompt, or the learned null
        # text); batched as [cond of every part(, uncond of every part)], with each part's guidance (a part that
        # asks for speech or noise at its kind's, ``kind_guidance``, when the call gives none)
        def part_guidance(text: str) -> float:
            return kind_guidance.get(sound_kind(text) or "", guidance)

        # guided when any text this call can denoise is (its parts, and a counted clause made again as asked)
        texts = parts if plan is None else [*parts, *(f for f in plan.foreground if f is not None)]
        guided = any(part_guidance(t) != 1.0 for t in texts)
        negative = self._branch(negative_prompt, drop=False) if guided and negative_prompt else None
        # a guidance-distilled denoiser guides in one pass (the scale is its input); a negative prompt still needs
        # the second branch, both at scale 1
        one_pass = guided and negative is None and c.denoiser.guidance_embed
        two_branch = guided and not one_pass

        def encode(texts: list[str]) -> tuple[Branch, Tensor, list[int]]:
            conds = [self._branch(p, drop=False) for p in texts]
            uncond = [negative or (*cond[:3], torch.tensor([True])) for cond in conds] if two_branch else []
            scales = torch.tensor([part_guidance(p) for p in texts], device=device)
            # each part's rounds of the vocoder's refinement: none for speech, whose words it blurs
            # (docs/latent_diffusion.md, "The vocoder held to its mel")
            rounds = [0 if sound_kind(p) == "speech" else c.vocoder_refine for p in texts]
            return self._batch(conds + uncond, 1, device), scales, rounds

        text = encode(parts)

        run = DiffusionSampler(sampler or c.sampler, self.schedule)
        interval = c.guidance_interval
        if init_audio is None:
            strength = 1.0
        elif strength is None:
            strength = 1.0 if inpaint is not None else DEFAULT_STRENGTH
        known = mask = None
        if init_audio is not None:
            audio_in = self.read_audio(init_audio)[:num_samples]
            audio_in = np.pad(audio_in, (0, num_samples - len(audio_in)))
            known = model.audio_to_latents(torch.from_numpy(audio_in)[None].to(device))  # [1, C, F, T']
            if inpaint is not None:
                mask = self._inpaint_mask(inpaint, duration, shape[-1]).to(device)

        def denoise(encoded: tuple[Branch, Tensor, list[int]], noise: torch.Tensor) -> list[np.ndarray]:
            """Parts ``[P, ...]`` from their noise (one row each) and text ``[cond(, uncond)]`` with guidance ``[P]`` and
            refinement rounds (:func:`encode`): one [T] each."""
            text, scales, rounds = encoded
            run.set_steps(
                steps, strength=float(strength), device=device
            )  # the scheduler is stateful: per call
            timesteps = run.timesteps
            if known is None:
                x = noise * float(getattr(run.scheduler, "init_noise_sigma", 1.0))
            else:
                x = run.add_noise(known, noise, timesteps[0]) if len(timesteps) else known.clone()
            # 3. denoising loop, classifier-free guidance on the batched [cond, uncond]
            for i, t in enumerate(_progress(timesteps, progress)):
                now = float(t) / self.schedule.num_train_timesteps  # the denoiser's time in [0, 1]
                step_guided = guided and (interval is None or interval[0] <= now <= interval[1])
                out = guided_prediction(
                    net, run.scale_model_input(x, t), now, text, scales, one_pass, step_guided, c.guidance_rescale,
                    window,
                )
                x = run.step(out, t, x)
                # inpainting: the kept range follows the init latent, noised to the next step's time
                if mask is not None:
                    nxt = known if i + 1 == len(timesteps) else run.add_noise(known, noise, timesteps[i + 1])
                    x = torch.where(mask, x, nxt)
            # 4. VAE decode to log-mel, 5. vocoder to waveform, 6. crop to the exact duration
            return [
                clip if gen_samples == num_samples else most_active(clip, num_samples, self.sample_rate)
                for clip in self.decode(x, gen_samples, rounds)
            ]

        shifts: list[list[float]] = []  # per candidate: the shift of each part that asks a pitch (0: left)

        def pitch_ask(asked: str, repeated: bool) -> tuple[float | tuple[int, int], bool] | None:
            # what a part is tuned to (a note, or an event's register) and whether it is a strike, or None. A
            # strike (a part that is repeated, or asked once) has the dips after its top filled when played
            # slower (docs/latent_diffusion.md, "Registers of sound events, and strikes tuned"). A clause asking
            # several strikes generated as one clip is not tuned (played slower, its last strikes would go)
            count = asked_count(asked)
            if not tune or (count is not None and count[1] > 1 and not repeated):
                return None
            target = asked_pitch(asked)
            return None if target is None else (target, repeated or ONCE.search(asked) is not None)

        asked = [prompt] if plan is None else plan.asked  # what each of ``parts`` stands for in the prompt
        repeated_parts = [False] * len(parts) if plan is None else plan.repeated  # which of ``parts`` are repeated
        asks = [pitch_ask(a, r) for a, r in zip(asked, repeated_parts, strict=True)]
        directions = [asked_direction(a) if tune else None for a in asked]  # +1 rise, -1 fall, None: not asked
        # "soft" / "loud" asked of each part, held to the model's ``dynamics_db`` (audio-to-audio keeps its level)
        dynamics = [asked_loudness(a) if c.dynamics_db and init_audio is None else None for a in asked]
        spans = [  # the register asked of an instrument's part that asks no held pitch (``register_tries``)
            asked_instrument_register(a) if tune and c.register_tries and ask is None else None
            for a, ask in zip(asked, asks)
        ]

        def off_by(clip: np.ndarray, i: int) -> tuple[float | None, float | None]:
            """How far part ``i`` is from what it asks, in semitones (None: unreadable, or nothing asked): its held
            pitch, or the root of an instrument's phrase against the register it asks; and the held pitch read."""
            if asks[i] is not None:
                note = measure_note(clip, self.sample_rate)
                return note_error(note, asks[i][0]), note
            if spans[i] is not None:
                return register_error(clip, self.sample_rate, spans[i], falling=directions[i] == -1), None
            return None, None

        def tuned(clip: np.ndarray, i: int, note: float | None = None) -> tuple[np.ndarray, float | None]:
            """Part ``i`` tuned to its ask, and its shift (None: nothing asked); ``note``: its held pitch, when
            read already."""
            if asks[i] is None:
                return clip, None
            target, strike = asks[i]
            kw = {"shift_in_mel": self.shift_in_mel} if c.tune_in_mel else {}
            kw |= {"measured": note} if note is not None else {}
            return tune_note(clip, self.sample_rate, target, strike=strike, **kw)

        def first_cut(drawn: list[tuple[np.ndarray, tuple[np.ndarray, float | None], Any]], want: int):
            """The first of ``drawn`` (raw, (made, shift), made's contour) whose made clip, cut where its pitch
            last moves the ``want`` way (:func:`cut_to_direction`), moves so; as ``(raw, (cut clip, shift))``, or
            None."""
            for raw_clip, (clip, shift), contour in drawn:
                cut = cut_to_direction(clip, self.sample_rate, want, contour=contour)
                if cut is not None and measure_direction(cut, self.sample_rate) == want:
                    return raw_clip, (cut, shift)
            return None

        # one candidate at a time: candidate i depends on seeds[i] alone, bit for bit
        rows, retried, redrawn, repitched, cut_for_direction, leveled = [], [], [], [], [], []
        for seed in seeds:
            # 2. seeded initial latent (pure noise, or the init latent noised to the first step's time):
            # one draw per part, in order, from the candidate's generator: the first part's noise is the one a
            # single clip with this seed gets
            gen = torch.Generator().manual_seed(seed)
            noise = torch.cat([torch.randn((1, *shape[1:]), generator=gen) for _ in parts]).to(device)
            raw = denoise(text, noise)  # [T] per part, as generated
            # a part whose held pitch is further than PITCH_REDRAW_SEMITONES from its ask is drawn again from fresh
            # noise, up to ``pitch_tries`` times (the candidate's generator, after every part's first draw), and the
            # draw nearest its ask is kept: a small shift is heard less than a large one
            # (``register_tries``: the same for a part whose root lies outside the register it asks of an instrument)
            repitched.append(0)
            notes: list[float | None] = [None] * len(parts)  # the kept draw's held pitch, where read
            for i, ask in enumerate(asks):
                tries = c.pitch_tries if ask is not None else c.register_tries
                error, notes[i] = off_by(raw[i], i) if tries else (None, None)
                for _ in range(tries if error is not None else 0):
                    if error <= PITCH_REDRAW_SEMITONES:
                        break
                    again_noise = torch.randn((1, *shape[1:]), generator=gen).to(device)
                    again = denoise(encode([parts[i]]), again_noise)[0]
                    repitched[-1] += 1
                    again_error, again_note = off_by(again, i)
                    if again_error is not None and again_error < error:
                        raw[i], error, notes[i] = again, again_error, again_note
            made = [tuned(clip, i, notes[i]) for i, clip in enumerate(raw)]
            # a part asked to rise or fall whose pitch does not move that way (moves the other way, stays, or
            # cannot be read) is drawn again from fresh noise (the candidate's generator, after every part's first
            # draw); when the tries run out, the first draw that moves as asked up to a point is cut there
            # (``cut_to_direction``), else the first draw that did not move the other way is kept
            redrawn.append(0)
            cut_for_direction.append(0)
            for i, want in enumerate(directions):
                fallback, drawn = None, []
                for attempt in range(DIRECTION_TRIES + 1 if want else 0):
                    contour = direction_contour(made[i][0], self.sample_rate)  # read once per draw
                    moves = measure_direction(made[i][0], self.sample_rate, contour=contour)
                    if moves == want:
                        break
                    drawn.append((raw[i], made[i], contour))
                    if moves != -want and fallback is None:
                        fallback = (raw[i], made[i])
                    if attempt == DIRECTION_TRIES:
                        # no draw moves as asked: the first that does up to a point is cut there, else the
                        # first that did not move the other way is kept
                        cut = first_cut(drawn, want)
                        if cut is not None:
                            raw[i], made[i] = cut
                            cut_for_direction[-1] += 1
                        elif fallback is not None:
                            raw[i], made[i] = fallback
                        break
                    again_noise = torch.randn((1, *shape[1:]), generator=gen).to(device)
                    raw[i] = denoise(encode([parts[i]]), again_noise)[0]
                    made[i] = tuned(raw[i], i)
                    redrawn[-1] += 1
            clips, part_shifts = [clip for clip, _ in made], [shift for _, shift in made]
            if any(dynamics):
                held = [hold_to_dynamics(clip, want, c.dynamics_db) for clip, want in zip(clips, dynamics)]
                clips = [clip for clip, _ in held]
                leveled.append([gain for (_, gain), want in zip(held, dynamics) if want])
            if plan is None:
                rows.append(clips[0])
                shifts.append([shift for shift in part_shifts if shift is not None])
                continue
            # 7. a layered prompt: lay the parts out (a silent slot stays silent) and mix them
            part = iter(range(len(parts)))
            bed = clips[next(part)] if plan.background else None
            slots, times, again = [], [], []
            for k, clause in enumerate(plan.foreground):
                j = None if clause is None else next(part)
                clip = np.zeros(num_samples, np.float32) if j is None else clips[j]
                spacing = num_samples // len(plan.foreground) // plan.times(k)  # its copies, at the closest
                if plan.times(k) > 1 and not has_event(clip, self.sample_rate, spacing):  # no event to repeat
                    if part_shifts[j] and has_event(raw[j], self.sample_rate, spacing):
                        clip, part_shifts[j] = raw[j], None  # played slower, its ring outlasts its spacing
                    else:
                        again.append((k, j))
                slots.append(clip)
                times.append(plan.times(k))
            if again:  # such a slot is generated again as asked (its count in the text), with its own noise
                redone = denoise(
                    encode([plan.foreground[k] for k, _ in again]), torch.stack([noise[j] for _, j in again])
                )
                for (k, j), clip in zip(again, redone, strict=True):
                    slots[k], times[k], part_shifts[j] = clip, 1, None  # several strikes: not tuned either
                retried.append(len(rows))
            snrs = [c.kind_bed_snr_db.get(sound_kind(f) or "", c.bed_snr_db) if f else 0.0 for f in plan.foreground]
            rows.append(mix_scene(bed, slots, self.sample_rate, snr_db=snrs, repeats=tuple(times)))
            shifts.append([shift for shift in part_shifts if shift is not None])
        audio = np.stack(rows)  # [N, T]
        if plan is not None:  # mixed parts can pass the peak ceiling that each part kept
            audio = limit_peak(audio)
        gains: list[float] = []
        if c.level_floor_db is not None and init_audio is None:  # audio-to-audio keeps the input's level
            audio, gains = raise_to_floor(audio, c.level_floor_db)

        meta: dict[str, Any] = {
            "steps": steps,
            "guidance": guidance,
            "sampler": run.name,
            "duration": duration,
            "candidate_seeds": list(seeds),
            "components": self.component_names(),
            "compute": compute,
        }
        kinds = {kind for p in parts if (kind := sound_kind(p)) in kind_guidance}  # parts at their kind's guidance
        if kinds:
            meta["kind_guidance"] = ", ".join(f"{k} {kind_guidance[k]:g}" for k in sorted(kinds))
        if self.schedule.is_flow:  # the sampler's flow shift (VP schedules have none)
            meta["shift"] = self.schedule.shift
        if context:
            meta["context_seconds"] = c.context_seconds
        if two_branch and c.guidance_rescale > 0:  # (one-pass guidance has no branch to rescale by)
            meta["guidance_rescale"] = c.guidance_rescale
        if any(gains):
            meta["level_gain_db"] = gains
        if negative_prompt:
            meta["negative_prompt"] = negative_prompt
        if init_audio is not None:
            meta["strength"] = float(strength)
        if inpaint is not None:
            meta["inpaint"] = f"{float(inpaint[0]):g}:{float(inpaint[1]):g}"
        if plan is not None:
            meta["composed"] = plan.describe()
        if any(any(row) for row in shifts):
            meta["tuned_semitones"] = shifts
        if any(redrawn):  # per candidate: how many times a part was drawn again for its pitch direction
            meta["redrawn_for_direction"] = redrawn
        if any(any(row) for row in leveled):  # per candidate: each part asked soft or loud, its gain in dB
            meta["dynamics_gain_db"] = leveled
        if any(cut_for_direction):  # per candidate: how many parts were cut where they last moved as asked
            meta["cut_for_direction"] = cut_for_direction
        if any(repitched):  # per candidate: how many times a part was drawn again for its held pitch
            meta["redrawn_for_pitch"] = repitched
        if retried:  # candidates (by seed) whose counted sound came out without an event once: made as asked
            meta["counted_as_asked"] = [seeds[i] for i in retried]
        if self._adapters:
            meta["adapters"] = "; ".join(
                f"{a['path']} x{a['scale']:g} (sha256 {a['sha256'][:12]})" for a in self._adapters.values()
            )

        # 8. several candidates: best first by the CLAP-style text-audio score
        if n > 1 and rerank:
            scores = self.clap_scores(audio, prompt)
            order = np.argsort(-scores, kind="stable")
            audio = audio[order]
            meta["candidate_seeds"] = [seeds[i] for i in order]
            meta["clap_scores"] = [round(float(scores[i]), 6) for i in order]
            if "level_gain_db" in meta:
                meta["level_gain_db"] = [gains[i] for i in order]
            if "tuned_semitones" in meta:
                meta["tuned_semitones"] = [shifts[i] for i in order]
            if "redrawn_for_direction" in meta:
                meta["redrawn_for_direction"] = [redrawn[i] for i in order]
            if "redrawn_for_pitch" in meta:
                meta["redrawn_for_pitch"] = [repitched[i] for i in order]
        return audio, meta

    @torch.no_grad()
    def shift_in_mel(self, audio: np.ndarray, semitones: float) -> np.ndarray:
        """``audio [T]`` (this model's output) re-rendered ``semitones`` higher: its log-mel moved along frequency
        (:func:`soundsmith.audio.dsp.shift_log_mel`), then the vocoder; the same length, timing kept."""
        cfg = self.model.mel_config()
        x = torch.from_numpy(np.asarray(audio, dtype=np.float32))[None].to(self.device)
        mel = shift_log_mel(mel_spectrogram(x, cfg), semitones, cfg)
        return limit_peak(self.model.mel_to_audio(mel, x.shape[-1]).float().cpu().numpy())[0]

    @torch.no_grad()
    def sample_latents(
        self,
        prompts: Sequence[str],
        noise: Tensor,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        compute: str | None = None,
    ) -> Tensor:
        """The denoised latents ``[N, C, F, T']`` of ``prompts`` (N) from their starting noise ``[N, C, F, T']``, one
        row per prompt, denoised together as one batch: the plain sampler loop of :meth:`generate`, without
        composition, tuning, re-ranking, windows or decoding. Each prompt is guided at its kind's guidance
        (``kind_guidance``) when ``guidance`` is None, else at ``guidance``. The same noise and prompt give the
        latent that :meth:`generate` decodes for a single-part prompt without tuning. What a one-pass student
        learns to map noise to (GANmix's teacher pairs)."""
        c = self.model.config
        steps = c.steps if steps is None else steps
        if not prompts or noise.shape[0] != len(prompts):
            raise ConfigError(f"need one noise row per prompt: {len(prompts)} prompts, noise {tuple(noise.shape)}")
        for prompt in prompts:
            self.check_prompt(prompt)
        self._check(c.duration, steps, c.guidance if guidance is None else guidance, None)
        net, _ = self.denoiser_for(c.compute if compute is None else compute)
        device, interval = self.device, c.guidance_interval
        scales = torch.tensor(
            [c.kind_guidance.get(sound_kind(p) or "", c.guidance) if guidance is None else guidance for p in prompts],
            device=device,
        )
        guided = bool((scales != 1.0).any())
        one_pass = guided and c.denoiser.guidance_embed
        conds = [self._branch(p, drop=False) for p in prompts]
        uncond = [(*cond[:3], torch.tensor([True])) for cond in conds] if guided and not one_pass else []
        text = self._batch(conds + uncond, 1, device)
        run = DiffusionSampler(c.sampler, self.schedule)
        run.set_steps(steps, device=device)
        x = noise.to(device) * float(getattr(run.scheduler, "init_noise_sigma", 1.0))
        for t in run.timesteps:
            now = float(t) / self.schedule.num_train_timesteps
            step_guided = guided and (interval is None or interval[0] <= now <= interval[1])
            out = guided_prediction(
                net, run.scale_model_input(x, t), now, text, scales, one_pass, step_guided, c.guidance_rescale, None
            )
            x = run.step(out, t, x)
        return x

    def denoiser_for(self, compute: Any) -> tuple[nn.Module, str]:
        """The denoiser to sample with for ``compute`` and the arithmetic it runs: the model's own (float32), or
        its int8 twin (built on first use, ``soundsmith.nn.int8``) on the CPU when no adapter is attached."""
        if compute not in COMPUTES:
            raise ConfigError(f"compute={compute!r} must be one of {list(COMPUTES)}")
        if compute == "float32" or self.device.type != "cpu" or self._adapters:
            return self.model.denoiser, "float32"
        if not int8_available():
            log.warning("this PyTorch cannot run int8 matrix products; the denoiser runs in float32")
            return self.model.denoiser, "float32"
        with self._int8_lock:
            if self._int8_denoiser is None:
                self._int8_denoiser = int8_copy(self.model.denoiser, within="blocks")
        return self._int8_denoiser, "int8"

    # -- LoRA adapters -----------------------------------------------------------------------------------------

    def load_adapter(self, path: str | Path, scale: float = 1.0, name: str | None = None) -> str:
        """Attach the LoRA adapter in ``path`` (an adapter folder, or a LoRA fine-tune run holding one in
        ``model/``) at ``scale`` (0 = off, 1 = full); returns its name (``name``, else one made from the folder's).

        The adapter's ``adapter.json`` names the base model it was trained on and that model's weights hash
        (``registry.weights_sha256``); it must equal this pipeline's model, else a ModelError says which base to
        load. Several adapters may be attached; their contributions add up.
        """
        from soundsmith.nn import lora

        directory = lora.find_adapter_dir(path)
        if directory is None:
            raise ModelError(
                f"{path}: no {lora.ADAPTER_JSON} here or in {Path(path) / 'model'}; give the folder of a LoRA "
                "fine-tune (soundsmith finetune --method lora --out RUN) or of an adapter"
            )
        info, state = lora.read_adapter(directory)
        scale = lora.check_scale(scale, f"scale of adapter {directory}")
        if info.get("family", self.family) != self.family:
            raise ModelError(
                f"{directory}: an adapter for family {info.get('family')!r}, not {self.family!r}"
            )
        if self.source is None or not self.source.weights_sha256:
            raise ModelError(
                "cannot check which base this model is: load it from its directory (soundsmith.load(...)) "
                "before attaching an adapter"
            )
        if info["base_sha256"] != self.source.weights_sha256:
            raise ModelError(
                f"adapter {directory} was trained on base {info.get('base')!r} (weights sha256 "
                f"{str(info['base_sha256'])[:12]}...), but {self.source.name!r} has weights sha256 "
                f"{self.source.weights_sha256[:12]}...; load the adapter on its base or fine-tune again on this one"
            )
        try:
            target = self.model.get_submodule(str(info["target"]))
        except AttributeError:
            raise ModelError(f"{directory}: the model has no {info['target']!r} to adapt") from None
        if name is None:
            stem = directory.parent.name if directory.name == "model" else directory.name
            base = re.sub(r"\W+", "_", stem).strip("_") or "adapter"
            base = base if base[0].isalpha() else f"a_{base}"
            name, i = base, 1
            while name in self._adapters:
                i += 1
                name = f"{base}_{i}"
        elif name in self._adapters:
            raise ModelError(f"an adapter named {name!r} is already attached; give another name")
        lora.load_lora_state(target, name, state, float(info["alpha"]), where=str(directory))
        lora.set_lora_scale(target, name, scale)
        digest = hashlib.sha256((directory / lora.ADAPTER_WEIGHTS).read_bytes()).hexdigest()
        self._adapters[name] = {"path": str(directory), "sha256": digest, "scale": scale, "target": target}
        return name

    @property
    def adapters(self) -> dict[str, float]:
        """The attached adapters: name -> scale."""
        return {name: a["scale"] for name, a in self._adapters.items()}

    def set_adapter_scale(self, name: str, scale: float) -> None:
        """Change an attached adapter's scale (0 = off, 1 = full strength)."""
        from soundsmith.nn import lora

        if name not in self._adapters:
            raise ModelError(f"no adapter {name!r} is attached; attached: {list(self._adapters) or 'none'}")
        lora.set_lora_scale(self._adapters[name]["target"], name, scale)
        self._adapters[name]["scale"] = float(scale)

    def remove_adapter(self, name: str) -> None:
        """Detach an adapter; with none left the model is the base again."""
        from soundsmith.nn import lora

        if name not in self._adapters:
            raise ModelError(f"no adapter {name!r} is attached; attached: {list(self._adapters) or 'none'}")
        lora.remove_lora(self._adapters.pop(name)["target"], name)

    def component_names(self) -> str:
        """Which frozen parts made the audio (provenance): ``"vae=vae, vocoder=vocoder, text_encoder=minilm"``."""
        from soundsmith.models.registry import ShippedRef, TextEncoderSpec

        names = []
        for name, ref in self.model.component_refs().items():
            label = (
                ref.name
                if isinstance(ref, ShippedRef)
                else ref.spec
                if isinstance(ref, TextEncoderSpec)
                else None
            )
            names.append(f"{name}={label or type(ref).__name__ + ' (in the model directory)'}")
        return ", ".join(names)

    def reranker(self) -> Any:
        """The CLAP-style scorer (built on first use; the shipped ``clap`` unless given)."""
        if self._reranker is None or isinstance(self._reranker, (str, Path)):
            from soundsmith.eval.embedders import ClapEmbedder, load_eval_model

            name = self._reranker or "clap"
            try:
                self._reranker = ClapEmbedder(load_eval_model(name, "clap"), device=str(self.device))
            except ModelError as e:
                raise ModelError(
                    f"num_candidates > 1 ranks candidates with the CLAP model {name!r}, which cannot be loaded "
                    f"({e}); generate one candidate or pass rerank=False"
                ) from e
        return self._reranker

    def clap_scores(self, audio: np.ndarray, prompt: str) -> np.ndarray:
        """Cosine of each clip ``[N, T]`` with ``prompt`` in the CLAP-style space: ``[N]``."""
        from soundsmith.eval.metrics import clap_score

        scorer = self.reranker()
        audio_emb = scorer.embed(torch.from_numpy(audio), self.sample_rate)  # [N, P]
        text_emb = scorer.embed_text([prompt]).expand(len(audio), -1)  # [N, P]
        return clap_score(audio_emb, text_emb).numpy()

    def round_trip(self, audio: AudioInput) -> np.ndarray:
        """What ``strength=0`` returns: the input through the VAE (posterior mean) and the vocoder, ``[T]``."""
        samples = torch.from_numpy(self.read_audio(audio))[None].to(self.device)
        return limit_peak(self.model.round_trip(samples)[0].float().cpu().numpy())


def rescale_guided(guided: Tensor, cond: Tensor, phi: float) -> Tensor:
    """``phi * guided * std(cond) / std(guided) + (1 - phi) * guided``, std per clip over all but the batch axis
    (``LatentDiffusionConfig.guidance_rescale``)."""
    dims = tuple(range(1, guided.ndim))
    ratio = cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return phi * guided * ratio + (1.0 - phi) * guided


def guided_prediction(
    net: Callable[..., Tensor],
    x_in: Tensor,
    now: float,
    text: Sequence[Tensor],
    scales: Tensor,
    one_pass: bool,
    guided: bool,
    rescale: float,
    window: int | None,
) -> Tensor:
    """One sampler step's prediction for the rows ``x_in [P, ...]`` at time ``now`` (in [0, 1]), each guided at its
    ``scales [P]``: in one pass by a guidance-distilled denoiser (``one_pass``: the scales are its input, 1 when this
    step is not ``guided``), else, on a ``guided`` step, from the conditional and unconditional branches (``text``
    holds both, ``[cond of every row, uncond of every row]``; rescaled by ``rescale`` when > 0), else from the
    conditional branch alone. ``window``: see :func:`_windowed`."""
    p = x_in.shape[0]
    two_branch = guided and not one_pass
    k = 2 * p if two_branch else p
    step_text = tuple(text) if k == len(text[0]) else tuple(v[:k] for v in text)
    if one_pass:
        step_text = (*step_text, scales if guided else torch.ones(p, device=x_in.device))
    out = _windowed(net, x_in.repeat(k // p, 1, 1, 1), torch.full((k,), now, device=x_in.device), step_text, window)
    if not two_branch:
        return out
    out_cond, out_uncond = out.chunk(2)
    guided_out = out_uncond + scales.view(-1, 1, 1, 1) * (out_cond - out_uncond)
    return rescale_guided(guided_out, out_cond, rescale) if rescale > 0 else guided_out


def _windowed(
    model: Callable[..., Tensor], x: Tensor, t: Tensor, text: Sequence[Tensor], window: int | None
) -> Tensor:
    """The denoiser's prediction for ``x [B, C, F, T']``; when ``T'`` exceeds ``window`` frames, the blend of its
    predictions on windows of ``window`` frames, overlapping by half, weighted by a Hann taper (never zero) and
    normalised where they overlap, so that every frame is predicted from contexts of the trained length."""
    frames = x.shape[-1]
    if window is None or frames <= window:
        return model(x, t, *text)
    hop = max(1, window // 2)
    starts = list(range(0, frames - window, hop)) + [frames - window]
    taper = torch.hann_window(window + 2, periodic=False, dtype=x.dtype, device=x.device)[1:-1]
    out = torch.zeros_like(x)
    weight = torch.zeros(frames, dtype=x.dtype, device=x.device)
    for s in starts:
        out[..., s : s + window] += taper * model(x[..., s : s + window], t, *text)
        weight[s : s + window] += taper
    return out / weight


def most_active(clip: np.ndarray, num_samples: int, sample_rate: int) -> np.ndarray:
    """The ``num_samples`` stretch of ``clip`` with the most energy (the earliest of equals), with 10 ms fades
    where it cuts into the clip."""
    energy = np.concatenate([[0.0], np.cumsum(np.square(clip, dtype=np.float64))])
    start = int(np.argmax(energy[num_samples:] - energy[: len(clip) - num_samples + 1]))
    out = clip[start : start + num_samples].copy()
    return fade_cuts(out, sample_rate, start=start > 0, end=start + num_samples < len(clip))


def _progress(items: Tensor, enabled: bool) -> Any:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="denoising", leave=False)
