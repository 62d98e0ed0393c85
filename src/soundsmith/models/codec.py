"""Neural audio codec: an encoder and a decoder around a residual VQ (SoundStream / EnCodec).

``audio [B, T] -> encoder -> latent [B, T', D] -> ResidualVQ -> codes [B, n_q, T'] -> decoder -> audio [B, T]``
with ``T' = ceil(T / hop)``, ``hop = prod(ratios)``. Two encoders and two decoders (``CodecConfig.encoder`` /
``decoder``):

- SEANet (SoundStream's): a 7-tap input conv, then per ratio ``r`` a residual unit (dilated 3-tap conv + 1x1,
  ELU) and a strided conv (kernel ``2r``, stride ``r``) doubling the channels, then a 3-tap conv to ``dim``; the
  decoder mirrors it with transposed convs. EnCodec's LSTM is left out (a CPU-speed choice: the codec must run at
  >= 100x real time on 2 cores).
- spectral: the encoder takes the project's log-mel at ``encoder_stride`` frames per token frame through a
  ConvNeXt backbone and a strided conv; the decoder is Vocos' (as Vocos decodes EnCodec's tokens): a ConvNeXt
  backbone and an inverse-STFT head, shaped so that it can start from the shipped vocoder
  (:meth:`Codec.init_decoder_from`). The base preset uses these: on the 2-core CPU the SEANet pair kept no pitch
  in 6,000 steps (docs/codec_lm.md).

Any input length works: the clip is zero-padded on the right to a multiple of ``hop`` and the output cropped back
to ``T`` (``forward``/``decode(codes, length)``). The codebooks are trained by EMA inside ``forward`` in training
mode (see ``soundsmith.nn.rvq``); the losses (reconstruction, multi-resolution STFT, commitment, adversarial)
live in ``train/objectives/codec.py``. Bitrate: ``n_q * log2(codebook_size) * sample_rate / hop`` bit/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.errors import ConfigError, ModelError
from soundsmith.nn.convnext import ConvNeXtBackbone
from soundsmith.nn.istft import ISTFTHead
from soundsmith.nn.rvq import ResidualVQ

ENCODERS = ("seanet", "mel")
DECODERS = ("seanet", "istft")


@dataclass
class CodecConfig:
    """Hyperparameters of :class:`Codec`. ``ratios``: the encoder's strides (the decoder's reversed);
    ``residual_dilations``: one residual unit per dilation at each scale."""

    sample_rate: int = 16000
    channels: int = 16
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    dim: int = 64
    num_quantizers: int = 8
    codebook_size: int = 1024
    ema_decay: float = 0.99
    # a code whose EMA count of assignments per batch falls below this is restarted on a batch vector; keep it
    # under batch_size * frames / codebook_size (the mean count), or live codes get restarted too
    dead_threshold: float = 0.1
    residual_dilations: list[int] = field(default_factory=lambda: [1])
    # audio is multiplied by this before the encoder and the decoder's output divided by it. At the default init a
    # -30 dBFS clip (the built-in corpus' level) moves the latent by ~2.5 % of the convs' biases: the codebooks,
    # drawn from such latents, put a whole clip on one code and nothing reaches the decoder (the first base run
    # collapsed so, docs/codec_lm.md); the base preset sets 30 dB of gain.
    input_gain: float = 1.0
    # "seanet": the mirror of the encoder, transposed convs up to the sample rate. "istft": a Vocos decoder (as
    # Vocos decodes EnCodec's tokens): the latent repeated ``decoder_upsample`` times per frame, a ConvNeXt
    # backbone (decoder_dim / decoder_intermediate_dim / decoder_depth) and an inverse-STFT head with hop
    # ``hop / decoder_upsample`` and 4x overlap. The SEANet decoder kept no tone in 6,000 CPU steps; the vocoder's
    # head, which the iSTFT decoder shares, kept tones within a few thousand (docs/codec_lm.md).
    decoder: str = "seanet"
    # "seanet": strided convs from the samples. "mel": a spectral encoder, the log-mel of the project's front end
    # (``encoder_mels`` mels every ``hop / encoder_stride`` samples) through a ConvNeXt backbone (encoder_dim /
    # encoder_intermediate_dim / encoder_depth) and a strided conv down to the token rate: it hears pitch from
    # the first step, where the SEANet encoder has to learn its own filterbank (docs/codec_lm.md)
    encoder: str = "seanet"
    encoder_dim: int = 256
    encoder_intermediate_dim: int = 512
    encoder_depth: int = 4
    encoder_mels: int = 64
    encoder_stride: int = 2
    decoder_dim: int = 256
    decoder_intermediate_dim: int = 512
    decoder_depth: int = 6
    decoder_upsample: int = 2

    def __post_init__(self) -> None:
        # (field, its choices, the choice with a stride, that stride's field)
        sides = (
            ("encoder", ENCODERS, "mel", "encoder_stride"),
            ("decoder", DECODERS, "istft", "decoder_upsample"),
        )
        for side, choices, _, _ in sides:
            if getattr(self, side) not in choices:
                raise ConfigError(
                    f"CodecConfig.{side}={getattr(self, side)!r} must be one of {', '.join(choices)}"
                )
        if not (math.isfinite(self.input_gain) and self.input_gain > 0):
            raise ConfigError(f"CodecConfig.input_gain={self.input_gain!r} must be a positive number")
        sizes = ("sample_rate", "channels", "dim", "num_quantizers", "codebook_size")
        sizes += (
            "encoder_dim",
            "encoder_intermediate_dim",
            "encoder_depth",
            "encoder_mels",
            "encoder_stride",
        )
        sizes += ("decoder_dim", "decoder_intermediate_dim", "decoder_depth", "decoder_upsample")
        for name in sizes:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"CodecConfig.{name}={getattr(self, name)!r} must be >= 1")
        if not self.ratios or any(int(r) < 1 for r in self.ratios):
            raise ConfigError(f"CodecConfig.ratios={self.ratios!r} must be a non-empty list of integers >= 1")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"CodecConfig.ema_decay={self.ema_decay} must be in (0, 1)")
        for side, _, strided, stride in sides:
            if getattr(self, side) == strided and math.prod(self.ratios) % getattr(self, stride):
                raise ConfigError(
                    f"CodecConfig.{stride}={getattr(self, stride)} must divide the hop "
                    f"({math.prod(self.ratios)}, the product of ratios) for the {strided} {side}"
                )

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second with ``n_q`` codebooks (all by default)."""
        return (n_q or self.num_quantizers) * math.log2(self.codebook_size) * self.frame_rate


class CodecOutput(NamedTuple):
    audio: Tensor  # [B, T] reconstruction, cropped to the input length
    codes: Tensor  # [B, n_q, T'] int64
    commit_loss: Tensor  # [] commitment loss of the RVQ
    latent: Tensor  # [B, T', D] the encoder's output (before quantization)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Module:
    """A weight-normed conv keeping ``T / stride`` frames ("same" padding, split as in EnCodec)."""
    total = (kernel - 1) * dilation - (stride - 1)
    return nn.Sequential(
        nn.ConstantPad1d((total - total // 2, total // 2), 0.0),
        weight_norm(nn.Conv1d(c_in, c_out, kernel, stride, dilation=dilation)),
    )


class ResidualUnit(nn.Module):
    """``x + conv1x1(elu(conv3_dilated(elu(x))))``: ``[B, C, T] -> [B, C, T]``."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        hidden = max(1, channels // 2)
        self.block = nn.Sequential(
            nn.ELU(), _conv(channels, hidden, 3, dilation=dilation), nn.ELU(), _conv(hidden, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class Upsample(nn.Module):
    """Transposed conv (kernel ``2r``, stride ``r``) trimmed to exactly ``r`` x the frames: ``[B, C, T] -> [B, C', rT]``."""

    def __init__(self, c_in: int, c_out: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.conv = weight_norm(nn.ConvTranspose1d(c_in, c_out, 2 * ratio, ratio))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)  # [B, C', (T + 1) r]
        left = self.ratio - self.ratio // 2
        return y[..., left : left + x.shape[-1] * self.ratio]


class SEANetEncoder(nn.Module):
    """``[B, 1, T] -> [B, dim, T / hop]`` (T a multiple of hop)."""

    def __init__(self, c: CodecConfig) -> None:
        super().__init__()
        ch = c.channels
        layers: list[nn.Module] = [_conv(1, ch, 7)]
        for r in c.ratios:
            layers += [ResidualUnit(ch, d) for d in c.residual_dilations]
            layers += [nn.ELU(), _conv(ch, 2 * ch, 2 * r, stride=r)]
            ch *= 2
        layers += [nn.ELU(), _conv(ch, c.dim, 3)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MelEncoder(nn.Module):
    """``[B, 1, T] -> [B, dim, T / hop]`` (T a multiple of hop): log-mel every ``hop / encoder_stride`` samples
    (centred frames; the first ``encoder_stride * T / hop`` kept), a ConvNeXt backbone, a conv of kernel and
    stride ``encoder_stride`` to ``dim``."""

    def __init__(self, c: CodecConfig) -> None:
        super().__init__()
        self.mel = MelConfig.at_rate(
            c.sample_rate, hop_length=c.hop_length // c.encoder_stride, n_mels=c.encoder_mels
        )
        self.backbone = ConvNeXtBackbone(
            c.encoder_mels, c.encoder_dim, c.encoder_intermediate_dim, c.encoder_depth
        )
        self.out = nn.Conv1d(c.encoder_dim, c.dim, c.encoder_stride, stride=c.encoder_stride)

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[-1] // self.mel.hop_length
        mel = mel_spectrogram(x[:, 0], self.mel)[..., :frames]  # [B, mels, stride * T']
        return self.out(self.backbone(mel).transpose(1, 2))


class SEANetDecoder(nn.Module):
    """``[B, dim, T'] -> [B, 1, T' * hop]``."""

    def __init__(self, c: CodecConfig) -> None:
        super().__init__()
        ch = c.channels * 2 ** len(c.ratios)
        layers: list[nn.Module] = [_conv(c.dim, ch, 7)]
        for r in reversed(c.ratios):
            layers += [nn.ELU(), Upsample(ch, ch // 2, r)]
            ch //= 2
            layers += [ResidualUnit(ch, d) for d in c.residual_dilations]
        layers += [nn.ELU(), _conv(ch, 1, 7)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ISTFTDecoder(nn.Module):
    """``[B, dim, T'] -> [B, 1, T' * hop]``: each latent frame repeated ``decoder_upsample`` times, a ConvNeXt
    backbone, an inverse-STFT head of hop ``hop / decoder_upsample`` (n_fft four times that)."""

    def __init__(self, c: CodecConfig) -> None:
        super().__init__()
        self.upsample = c.decoder_upsample
        hop = c.hop_length // c.decoder_upsample
        self.backbone = ConvNeXtBackbone(c.dim, c.decoder_dim, c.decoder_intermediate_dim, c.decoder_depth)
        # the vocoder's ceiling (log 1000: a 0.2-peak sine in a 640-point frame is at ~1000) in the audio's own
        # scale: the head works at input_gain times it, so at the base gain of 31.6 a fixed log 1000 clipped every
        # tone louder than -14 dBFS (the corpus' beeps came back 30 dB quiet in the band of the note)
        self.head = ISTFTHead(c.decoder_dim, 4 * hop, hop, math.log(1000.0 * c.input_gain))

    def forward(self, z: Tensor) -> Tensor:
        z = z.repeat_interleave(self.upsample, dim=-1) if self.upsample > 1 else z
        return self.head(self.backbone(z))[:, None]


class Codec(nn.Module):
    """``forward(audio [B, T], n_q=None) -> CodecOutput``; ``encode`` / ``decode`` for tokens."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = SEANetEncoder(c) if c.encoder == "seanet" else MelEncoder(c)
        self.quantizer = ResidualVQ(c.dim, c.num_quantizers, c.codebook_size, c.ema_decay, c.dead_threshold)
        self.decoder = SEANetDecoder(c) if c.decoder == "seanet" else ISTFTDecoder(c)

    def init_decoder_from(self, vocoder: nn.Module, source: str = "the vocoder") -> None:
        """Start the iSTFT decoder from a trained vocoder's ConvNeXt backbone and inverse-STFT head (the same
        shapes: ``decoder_dim``, ``decoder_intermediate_dim``, ``decoder_depth``, a head hop ``hop /
        decoder_upsample`` equal to the vocoder's, and ``dim`` equal to its mel count). The codec then learns an
        encoder whose latent the vocoder's layers can already turn into phase-coherent audio."""
        if self.config.decoder != "istft":
            raise ConfigError(f"initialising the decoder from {source} needs CodecConfig.decoder='istft'")
        for part in ("backbone", "head"):
            mine, theirs = getattr(self.decoder, part).state_dict(), getattr(vocoder, part).state_dict()
            wrong = [
                f"{part}.{k} {tuple(v.shape)} (the vocoder's {tuple(theirs[k].shape) if k in theirs else 'missing'})"
                for k, v in mine.items()
                if k not in theirs or theirs[k].shape != v.shape
            ]
            if wrong or set(theirs) - set(mine):
                raise ConfigError(
                    f"{source} does not fit this codec's decoder: {'; '.join(wrong[:3]) or 'extra layers'}; match "
                    "decoder_dim, decoder_intermediate_dim, decoder_depth, dim (its mels) and hop / "
                    "decoder_upsample (its hop) to the vocoder's config"
                )
            getattr(self.decoder, part).load_state_dict(theirs)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def frames(self, num_samples: int) -> int:
        """Token frames ``T'`` of a clip of ``num_samples`` samples: ``ceil(T / hop)``."""
        return -(-int(num_samples) // self.hop_length)

    def _check(self, audio: Tensor) -> Tensor:
        if audio.dim() == 3 and audio.shape[1] == 1:
            audio = audio[:, 0]
        if audio.dim() != 2 or audio.shape[-1] == 0:
            raise ModelError(f"codec expects mono audio [B, T] with T > 0, got shape {tuple(audio.shape)}")
        return audio

    def embed(self, audio: Tensor) -> Tensor:
        """Audio ``[B, T]`` -> encoder latent ``[B, T', D]`` (right zero-padding to a multiple of the hop)."""
        audio = self._check(audio)
        pad = self.frames(audio.shape[-1]) * self.hop_length - audio.shape[-1]
        x = F.pad(audio * self.config.input_gain, (0, pad))[:, None]  # [B, 1, T' * hop]
        return self.encoder(x).transpose(1, 2)  # [B, T', D]

    def forward(self, audio: Tensor, n_q: int | None = None) -> CodecOutput:
        """Audio ``[B, T]`` -> reconstruction ``[B, T]`` through the first ``n_q`` codebooks (all by default)."""
        latent = self.embed(audio)
        q, codes, commit = self.quantizer(latent, n_q)
        return CodecOutput(self.decode_latent(q, audio.shape[-1]), codes, commit, latent)

    @torch.no_grad()
    def encode(self, audio: Tensor, n_q: int | None = None) -> Tensor:
        """Audio ``[B, T]`` -> codes ``[B, n_q, ceil(T / hop)]`` int64."""
        return self.quantizer.encode(self.embed(audio), n_q)

    def decode_latent(self, q: Tensor, length: int | None = None) -> Tensor:
        """Quantized latent ``[B, T', D]`` -> audio ``[B, length]`` (``T' * hop`` by default; cropped or padded)."""
        y = self.decoder(q.transpose(1, 2))[:, 0] / self.config.input_gain  # [B, T' * hop]
        if length is not None:
            y = y[:, :length] if y.shape[-1] >= length else F.pad(y, (0, length - y.shape[-1]))
        return y

    @torch.no_grad()
    def decode(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Codes ``[B, n_q, T']`` (any ``n_q <= num_quantizers``) -> audio ``[B, length]``."""
        if codes.dim() != 3:
            raise ModelError(f"codes must be [B, n_q, frames], got shape {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size):
            raise ModelError(
                f"codes must lie in [0, {self.config.codebook_size}) for this codec, "
                f"got [{int(codes.min())}, {int(codes.max())}]"
            )
        return self.decode_latent(self.quantizer.decode(codes), length)
