"""Neural vocoder, log-mel -> waveform: a Vocos-style ConvNeXt backbone with an inverse-STFT head, or HiFi-GAN.

``generator="vocos"`` (the default, and the shipped model): the backbone runs at the mel frame rate (100 frames/s at
16 kHz, hop 160) and predicts, per frame, the log magnitude and the phase of a short-time spectrum (``head_n_fft``
points, 4x overlap); an inverse STFT turns them into samples. Nothing runs at the sample rate, which is why it is
fast on a CPU (Siuzdak 2023, "Vocos").

``generator="hifigan"``: HiFi-GAN's generator (Kong et al. 2020; :mod:`soundsmith.nn.hifigan`), transposed
convolutions from the frame rate up to the sample rate with multi-receptive-field fusion: the comparison model of
tracker issue 10. Same input, output, objective and discriminators; only the generator differs.

Input: log-mel ``[B, n_mels, frames]`` exactly as :func:`soundsmith.audio.mel_spectrogram` computes it with
:meth:`VocoderConfig.mel_config`. Output: ``[B, frames * hop_length]``, so a clip of ``T`` samples comes back as
``(T // hop + 1) * hop >= T`` samples (crop to ``T``). Alignment: with Vocos, sample ``t * hop_length`` lines up
with the centre of mel frame ``t`` by construction (the inverse STFT is centred like the mel's STFT). HiFi-GAN's
upsampling puts frame ``t`` around sample ``t * hop + frame_centre(upsample_rates)`` (:mod:`soundsmith.nn.hifigan`;
63.5 samples later for ``(5, 4, 4, 2)``), and the network learns to move the audio back into place from the
training loss. The network is pure: GAN losses and discriminators live in ``train/objectives/vocoder.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundsmith.audio import MelConfig, istft, mel_filterbank, mel_spectrogram, stft
from soundsmith.errors import ConfigError
from soundsmith.nn.convnext import ConvNeXtBackbone
from soundsmith.nn.hifigan import HiFiGANGenerator
from soundsmith.nn.istft import PHASE_MODES, ISTFTHead

MEL_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax")
GENERATORS = ("vocos", "hifigan")


@dataclass
class VocoderConfig:
    # --- Vocos generator (ignored when generator="hifigan")
    dim: int = 256  # backbone channels
    intermediate_dim: int = 768  # ConvNeXt MLP width
    depth: int = 8  # ConvNeXt blocks
    kernel_size: int = 7  # depthwise conv over frames
    head_n_fft: int = 0  # inverse-STFT size of the head; 0 = 4 * hop_length (4x overlap, as Vocos)
    # the predicted log magnitude is clipped here; Vocos' log 100 caps a 640-point frame's sine at amplitude
    # ~0.6 (a full-scale sine peaks at 160), so the default allows 1000
    max_log_magnitude: float = math.log(1000.0)
    # how the head's phases come about: "absolute" (Vocos; the shipped model) or "accumulated" (advances summed
    # over frames: no frame-rate buzz; soundsmith.nn.istft.ISTFTHead)
    head_phase: str = "absolute"
    # mel front end the vocoder inverts (travels with the weights; a different mel is refused)
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    # which generator: "vocos" (the fields above) or "hifigan" (the fields below). New fields come last so that
    # configs saved before them (no "generator" key) load as the Vocos model they are.
    generator: str = "vocos"
    # --- HiFi-GAN generator (ignored when generator="vocos"); the defaults are V2's widths at hop 160
    # one stride per stage (each a transposed conv of kernel 2 * rate); their product must equal hop_length
    upsample_rates: tuple[int, ...] = (5, 4, 4, 2)
    upsample_initial_channel: int = 128  # channels after conv_pre, halved by every stage (V1: 512, V2: 128)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # one multi-receptive-field resblock per kernel size
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))  # per resblock

    def __post_init__(self) -> None:
        # JSON and YAML give lists: normalise to tuples, so a saved config loads equal to the one saved
        self.upsample_rates = tuple(self.upsample_rates)
        self.resblock_kernel_sizes = tuple(self.resblock_kernel_sizes)
        self.resblock_dilations = tuple(tuple(d) for d in self.resblock_dilations)
        if self.generator == "vocos":
            self._check_vocos()
        elif self.generator == "hifigan":
            self._check_hifigan()
        else:
            raise ConfigError(
                f"VocoderConfig.generator={self.generator!r} is not a vocoder generator; valid: "
                f"{', '.join(GENERATORS)}"
            )
        self.mel_config()  # validates the front end

    def _check_vocos(self) -> None:
        for key in ("dim", "intermediate_dim", "depth", "kernel_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"VocoderConfig.{key}={getattr(self, key)} must be positive")
        if self.kernel_size % 2 != 1:
            raise ConfigError(f"VocoderConfig.kernel_size={self.kernel_size} must be odd")
        if self.head_phase not in PHASE_MODES:
            raise ConfigError(f"VocoderConfig.head_phase={self.head_phase!r}; valid: {', '.join(PHASE_MODES)}")
        if self.head_n_fft and (self.head_n_fft < 2 * self.hop_length or self.head_n_fft % 2):
            raise ConfigError(
                f"VocoderConfig.head_n_fft={self.head_n_fft} must be even and >= 2 * hop_length "
                f"({2 * self.hop_length}), or 0 for 4 * hop_length"
            )

    def _check_hifigan(self) -> None:
        rates = self.upsample_rates
        if not rates or any(r < 2 for r in rates):  # a stride-1 transposed conv of kernel 2 adds a sample
            raise ConfigError(f"VocoderConfig.upsample_rates={list(rates)} must be one or more strides >= 2")
        if math.prod(rates) != self.hop_length:
            raise ConfigError(
                f"VocoderConfig.upsample_rates={list(rates)} multiply to {math.prod(rates)}, but their product must "
                f"equal hop_length={self.hop_length}"
            )
        if self.upsample_initial_channel < 2 ** len(rates):
            raise ConfigError(
                f"VocoderConfig.upsample_initial_channel={self.upsample_initial_channel} must be >= "
                f"2**{len(rates)} = {2 ** len(rates)}: each of the {len(rates)} stages halves the channels"
            )
        kernels, dilations = self.resblock_kernel_sizes, self.resblock_dilations
        if not kernels or any(k <= 0 or k % 2 != 1 for k in kernels):
            raise ConfigError(
                f"VocoderConfig.resblock_kernel_sizes={list(kernels)} must be one or more odd positive sizes"
            )
        if len(dilations) != len(kernels) or any(not d or min(d) <= 0 for d in dilations):
            raise ConfigError(
                f"VocoderConfig.resblock_dilations={[list(d) for d in dilations]} must hold one non-empty list of "
                f"positive dilations per kernel size ({len(kernels)})"
            )

    @property
    def istft_n_fft(self) -> int:
        return self.head_n_fft or 4 * self.hop_length

    def mel_config(self) -> MelConfig:
        """The :class:`~soundsmith.audio.MelConfig` of the mels this vocoder inverts."""
        return MelConfig(**{k: getattr(self, k) for k in MEL_FIELDS})


def check_mel_config(expected: MelConfig, given: MelConfig, who: str = "vocoder") -> None:
    """Raise ConfigError naming every field where ``given`` differs from the ``expected`` mel front end."""
    diffs = [
        f"{f.name}={getattr(given, f.name)} (expects {getattr(expected, f.name)})"
        for f in fields(MelConfig)
        if getattr(given, f.name) != getattr(expected, f.name)
    ]
    if diffs:
        raise ConfigError(
            f"the mel given to the {who} was computed with different settings: {', '.join(diffs)}; compute the "
            f"mel with the {who}'s own mel_config()"
        )


class Vocoder(nn.Module):
    """Log-mel ``[B, n_mels, frames]`` -> waveform ``[B, frames * hop_length]`` (float32).

    ``config.generator`` picks the network: ``backbone`` + ``head`` (Vocos) or ``generator`` (HiFi-GAN); the
    state-dict keys say which.
    """

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.generator == "hifigan":
            self.generator = HiFiGANGenerator(
                c.n_mels,
                c.upsample_initial_channel,
                c.upsample_rates,
                c.resblock_kernel_sizes,
                c.resblock_dilations,
            )
        else:  # "vocos" (VocoderConfig refuses any other name)
            self.backbone = ConvNeXtBackbone(c.n_mels, c.dim, c.intermediate_dim, c.depth, c.kernel_size)
            self.head = ISTFTHead(c.dim, c.istft_n_fft, c.hop_length, c.max_log_magnitude, c.head_phase)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def mel_config(self) -> MelConfig:
        return self.config.mel_config()

    def forward(self, mel: Tensor) -> Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ConfigError(
                f"vocoder expects a log-mel [B, {self.config.n_mels}, frames], got shape {tuple(mel.shape)}; "
                "compute it with the vocoder's mel_config()"
            )
        if self.config.generator == "hifigan":
            return self.generator(mel).float()  # [B, frames * hop], float32 like the iSTFT head's
        return self.head(self.backbone(mel))  # [B, frames * hop]

    @torch.no_grad()
    def vocode(
        self,
        mel: Tensor,
        mel_config: MelConfig | None = None,
        length: int | None = None,
        level_match: bool = False,
        refine: int = 0,
    ) -> Tensor:
        """Inference: log-mel ``[..., n_mels, frames]`` -> ``[..., frames * hop]`` (or ``length`` samples). Then
        ``refine`` rounds of :func:`refine_to_mel` (its magnitudes moved to the input mel's, its phase kept), and
        with ``level_match`` each clip at its input mel's level (:func:`match_mel_level`).

        ``mel_config``, when given, must equal this vocoder's front end (else ConfigError naming the fields).
        """
        if mel_config is not None:
            check_mel_config(self.mel_config(), mel_config)
        check_refine(refine)
        lead = mel.shape[:-2]
        flat = mel.reshape(-1, *mel.shape[-2:]).to(next(self.parameters()).dtype)
        wav = self(flat)
        if refine:
            wav = refine_to_mel(wav, flat, self.mel_config(), refine)
        if level_match:
            wav = match_mel_level(wav, flat, self.mel_config())
        if length is not None:
            wav = wav[..., :length] if length <= wav.shape[-1] else F.pad(wav, (0, length - wav.shape[-1]))
        return wav.reshape(*lead, wav.shape[-1])


MAX_LEVEL_GAIN_DB = 24.0  # :func:`match_mel_level` and :func:`refine_to_mel` move by at most this much either way
SILENT_MEL = 1e-4  # ... and leave alone a clip (a band) whose mel magnitude is under this (silence: nothing to match)
MAX_REFINE = 16  # rounds of :func:`refine_to_mel`


@torch.no_grad()
def match_mel_level(wav: Tensor, mel: Tensor, cfg: MelConfig) -> Tensor:
    """``wav [B, T]`` (a vocoder's output for the log-mel ``mel [B, n_mels, frames]``), each row scaled so that the
    RMS of its own mel magnitudes (``cfg``'s front end) equals that of ``mel``'s: the level the mel asks, which a
    vocoder whose overlapping frames do not add up in phase falls short of (the shipped one by ~2 LU, ~6 LU on
    clean tones: docs/autoencoders.md, "The vocoder held to its mel"). One gain per clip, so its dynamics are
    kept; within +-:data:`MAX_LEVEL_GAIN_DB`; a silent input or output is left alone."""
    asked = mel.float().exp().pow(2).mean(dim=(-2, -1)).sqrt()  # [B]
    made = mel_spectrogram(wav.float(), cfg, log=False).pow(2).mean(dim=(-2, -1)).sqrt()
    limit = 10.0 ** (MAX_LEVEL_GAIN_DB / 20.0)
    gain = torch.where(
        (asked > SILENT_MEL) & (made > SILENT_MEL / limit),
        (asked / made.clamp_min(1e-12)).clamp(1.0 / limit, limit),
        torch.ones_like(asked),
    )
    return wav * gain.to(wav.dtype)[:, None]


def check_refine(refine: object, name: str = "refine") -> None:
    """A one-line error naming ``name`` unless ``refine`` is a count of :func:`refine_to_mel` rounds (0 to
    :data:`MAX_REFINE`)."""
    if isinstance(refine, bool) or not (isinstance(refine, int) and 0 <= refine <= MAX_REFINE):
        raise ConfigError(f"{name}={refine!r} must be an integer from 0 to {MAX_REFINE} (rounds; 0: off)")


@torch.no_grad()
def refine_to_mel(wav: Tensor, mel: Tensor, cfg: MelConfig, rounds: int) -> Tensor:
    """``wav [B, T]`` (a vocoder's output for the log-mel ``mel [B, n_mels, frames]``) with its magnitudes moved
    to the mel it was made from, its phase kept: each round takes the STFT (``cfg``'s), scales every mel band of
    every frame by the ratio of the asked mel to its own (within +-:data:`MAX_LEVEL_GAIN_DB`; spread over the
    band's linear bins by the filterbank's weights, each bin's summing to 1), and inverts it. The vocoder's phase is
    coherent where Griffin-Lim's is not, and its magnitudes are blurred where the mel is exact: a few rounds of
    Griffin-Lim's projection started from it keep the first and fix much of the second (docs/autoencoders.md,
    "The vocoder held to its mel")."""
    fb = mel_filterbank(cfg, device=wav.device)  # [M, F]
    spread = (fb / fb.sum(0, keepdim=True).clamp_min(1e-8)).T  # [F, M]: each linear bin's bands, summing to 1
    asked = mel.float().exp()  # [B, M, frames]
    limit = 10.0 ** (MAX_LEVEL_GAIN_DB / 20.0)
    x = wav.float()
    for _ in range(rounds):
        spec = stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length)  # [B, F, frames]
        made = fb @ spec.abs()
        if made.shape[-1] > asked.shape[-1]:  # frames * hop samples have one frame more than the mel: its last
            asked = F.pad(asked, (0, made.shape[-1] - asked.shape[-1]), mode="replicate")
        asked = asked[..., : made.shape[-1]]
        gain = (asked / made.clamp_min(1e-8)).clamp(1.0 / limit, limit)
        gain = torch.where((asked < SILENT_MEL) & (made < SILENT_MEL), torch.ones_like(gain), gain)
        x = istft(spec * (spread @ gain), cfg.n_fft, cfg.hop_length, cfg.win_length, length=x.shape[-1])
    return x.to(wav.dtype)
