"""The codec against references worked out by hand: the SEANet encoder/decoder forward in float64 (functional
convs with the weights read from the state dict by name, each layer's shape derived from the config and asserted),
``CodecConfig``'s checks and messages at their boundaries, the bitrate arithmetic, and the right zero-padding /
crop-or-pad of ``embed`` / ``decode_latent``. A changed layer size, kernel, stride, dilation, padding (amount or
value), activation or crop makes them differ; the length-only tests in ``test_codec.py`` would not see it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.codec import Codec, CodecConfig

# three tiny configs, so the size formulas are pinned and not single values: three ratios (2 ** n != 2 * n for the
# decoder's top width), a ratio of 1, dilations other than 1, and widths 1-3 where hidden = max(1, C // 2) bites
CONFIGS = {
    "three-ratios": dict(channels=2, ratios=[2, 3, 2], dim=5, residual_dilations=[1, 3], num_quantizers=2),
    "ratio-one": dict(channels=3, ratios=[4, 1], dim=4, residual_dilations=[2], num_quantizers=3),
    "one-channel": dict(channels=1, ratios=[5], dim=3, residual_dilations=[1, 2], num_quantizers=1),
}
WN = ("parametrizations.weight.original0", "parametrizations.weight.original1", "bias")


def random_codec(name: str, seed: int = 0, **kw) -> Codec:
    """A codec of ``CONFIGS[name]`` with every weight-norm gain, direction and bias redrawn (so the effective weight
    differs from the direction ``v`` and the biases are not small), in float64, eval mode."""
    torch.manual_seed(seed)
    codec = Codec(CodecConfig(**{"codebook_size": 8, **CONFIGS[name], **kw})).double().eval()
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for key, p in codec.named_parameters():
            # the gain g: one per output channel (per input channel when transposed)
            if key.endswith("original0"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype))
            elif key.endswith("original1"):  # the direction v
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return codec


# --- the float64 reference -------------------------------------------------------------------------------------
def elu(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.expm1(x))


class Reference:
    """The documented SEANet stacks evaluated with functional float64 ops on the module's state dict.

    Each weight-normed layer ``prefix`` is read as ``w = g * v / ||v||`` (norm over every axis but the first),
    its shape asserted against the one the config implies; ``used`` records the prefixes read, so a layer the
    module has and the architecture does not also fails (see ``assert_all_read``)."""

    def __init__(self, codec: Codec) -> None:
        self.c = codec.config
        self.sd = {k: v.detach().double() for k, v in codec.state_dict().items()}
        self.used: list[str] = []

    def weight(self, prefix: str, shape: tuple[int, int, int], bias: int) -> tuple[Tensor, Tensor]:
        g, v, b = (self.sd[f"{prefix}.{s}"] for s in WN)
        assert tuple(v.shape) == shape, (prefix, tuple(v.shape), shape)
        assert tuple(g.shape) == (shape[0], 1, 1) and tuple(b.shape) == (bias,), prefix
        self.used.append(prefix)
        return g * v / v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt(), b

    def conv(
        self, x: Tensor, prefix: str, c_in: int, c_out: int, k: int, stride: int = 1, dil: int = 1
    ) -> Tensor:
        """EnCodec's non-causal "same" conv: pad ``(k - 1) d - (s - 1)`` zeros, the odd one on the left."""
        w, b = self.weight(prefix, (c_out, c_in, k), c_out)
        total = (k - 1) * dil - (stride - 1)
        y = F.conv1d(F.pad(x, (total - total // 2, total // 2)), w, b, stride=stride, dilation=dil)
        assert y.shape[-1] * stride == x.shape[-1], (prefix, x.shape, y.shape)  # T -> T / stride exactly
        return y

    def residual(self, x: Tensor, prefix: str, ch: int, dil: int) -> Tensor:
        """``x + conv1x1(elu(conv3_dilated(elu(x))))`` through ``max(1, ch // 2)`` hidden channels."""
        hidden = max(1, ch // 2)
        h = self.conv(elu(x), f"{prefix}.block.1.1", ch, hidden, 3, dil=dil)
        return x + self.conv(elu(h), f"{prefix}.block.3.1", hidden, ch, 1)

    def upsample(self, x: Tensor, prefix: str, c_in: int, c_out: int, r: int) -> Tensor:
        """Transposed conv (kernel 2r, stride r) -> (T + 1) r frames, trimmed as EnCodec does: r // 2 on the right,
        the rest on the left, leaving T r."""
        w, b = self.weight(f"{prefix}.conv", (c_in, c_out, 2 * r), c_out)  # transposed: [in, out, k]
        y = F.conv_transpose1d(x, w, b, stride=r)
        assert y.shape[-1] == (x.shape[-1] + 1) * r
        left = r - r // 2
        return y[..., left : left + x.shape[-1] * r]

    def encode(self, x: Tensor) -> Tensor:
        """``[B, 1, T] -> [B, dim, T / hop]``: 7-tap conv to C; per ratio r: residual units, ELU, conv (2r, stride r)
        to 2C; ELU, 3-tap conv to dim. Sequential index i of the module's ``encoder.net``."""
        ch, i = self.c.channels, 1
        h = self.conv(x, "encoder.net.0.1", 1, ch, 7)
        for r in self.c.ratios:
            for d in self.c.residual_dilations:
                h, i = self.residual(h, f"encoder.net.{i}", ch, d), i + 1
            h, i = self.conv(elu(h), f"encoder.net.{i + 1}.1", ch, 2 * ch, 2 * r, stride=r), i + 2
            ch *= 2
        assert ch == self.c.channels * 2 ** len(self.c.ratios)
        return self.conv(elu(h), f"encoder.net.{i + 1}.1", ch, self.c.dim, 3)

    def decode(self, z: Tensor) -> Tensor:
        """``[B, dim, T'] -> [B, 1, T' hop]``: 7-tap conv to C 2^n; per reversed ratio: ELU, upsample halving the
        channels, residual units; ELU, 7-tap conv to 1 channel."""
        ch = self.c.channels * 2 ** len(self.c.ratios)
        h, i = self.conv(z, "decoder.net.0.1", self.c.dim, ch, 7), 1
        for r in reversed(self.c.ratios):
            h, i = self.upsample(elu(h), f"decoder.net.{i + 1}", ch, ch // 2, r), i + 2
            ch //= 2
            for d in self.c.residual_dilations:
                h, i = self.residual(h, f"decoder.net.{i}", ch, d), i + 1
        assert ch == self.c.channels
        return self.conv(elu(h), f"decoder.net.{i + 1}.1", ch, 1, 7)

    def assert_all_read(self, part: str) -> None:
        """Every parameter of ``part`` (encoder/decoder) belongs to a layer the reference evaluated, and only once."""
        assert len(set(self.used)) == len(self.used)
        keys = {k for k in self.sd if k.startswith(f"{part}.")}
        assert keys == {f"{p}.{s}" for p in self.used if p.startswith(f"{part}.") for s in WN}


# --- 1. encoder / decoder forward -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_encoder_and_decoder_equal_the_float64_reference(name):
    codec = random_codec(name)
    c, hop = codec.config, math.prod(codec.config.ratios)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 5 * hop, generator=gen, dtype=torch.float64)
    z = torch.randn(2, c.dim, 4, generator=gen, dtype=torch.float64)
    ref = Reference(codec)
    with torch.no_grad():
        want_z, want_y = ref.encode(x), ref.decode(z)
        got_z, got_y = codec.encoder(x), codec.decoder(z)
        # the same module in float32 agrees to float32 precision
        got32_z, got32_y = codec.float().encoder(x.float()), codec.decoder(z.float())
    ref.assert_all_read("encoder")
    ref.assert_all_read("decoder")
    assert want_z.shape == (2, c.dim, 5) and want_y.shape == (2, 1, 4 * hop)
    assert want_z.std() > 0.05 and want_y.std() > 0.05  # not a degenerate (all-zero / saturated) comparison
    torch.testing.assert_close(got_z, want_z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got_y, want_y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got32_z.double(), want_z, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got32_y.double(), want_y, rtol=1e-4, atol=1e-4)


def test_a_dilation_or_padding_change_moves_the_output():
    """Self-check of the reference: the same walk with one detail changed no longer matches the module."""
    codec = random_codec("three-ratios")
    x = torch.randn(1, 1, 3 * 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    class OtherPad(Reference):
        def conv(self, x, prefix, c_in, c_out, k, stride=1, dil=1):
            w, b = self.weight(prefix, (c_out, c_in, k), c_out)
            total = (k - 1) * dil - (stride - 1)
            return F.conv1d(F.pad(x, (total // 2, total - total // 2)), w, b, stride=stride, dilation=dil)

    class NoDilation(Reference):
        def residual(self, x, prefix, ch, dil):
            return super().residual(x, prefix, ch, 1)

    with torch.no_grad():
        want = codec.encoder(x)
        for other in (OtherPad, NoDilation):
            assert not torch.allclose(other(codec).encode(x), want, rtol=1e-3, atol=1e-3), other.__name__


# --- Codec plumbing around the stacks ---------------------------------------------------------------------------
def test_the_quantizer_gets_the_config_settings():
    codec = Codec(CodecConfig(**CONFIGS["ratio-one"], codebook_size=8, ema_decay=0.75, dead_threshold=0.3))
    assert len(codec.quantizer.layers) == 3
    for vq in codec.quantizer.layers:
        assert (vq.decay, vq.dead_threshold) == (0.75, 0.3)
        assert tuple(vq.embed.shape) == (8, 4)


@pytest.mark.parametrize("name", ["three-ratios", "ratio-one"])
def test_embed_and_encode_pad_on_the_right_with_zeros(name):
    codec = random_codec(name)
    hop = math.prod(codec.config.ratios)
    ref = Reference(codec)
    gen = torch.Generator().manual_seed(3)
    for T in (1, hop - 1, hop, hop + 1, 3 * hop + hop // 2):
        x = torch.randn(2, T, generator=gen, dtype=torch.float64)
        frames = (T + hop - 1) // hop
        padded = torch.cat([x, torch.zeros(2, frames * hop - T, dtype=torch.float64)], 1)
        with torch.no_grad():
            latent = codec.embed(x)
            want = ref.encode(padded[:, None]).transpose(1, 2)
        assert codec.frames(T) == frames
        assert latent.shape == (2, frames, codec.config.dim)
        torch.testing.assert_close(latent, want, rtol=1e-10, atol=1e-10)
        # a [B, 1, T] clip is the same clip as [B, T]
        torch.testing.assert_close(codec.embed(x[:, None]), latent, rtol=0, atol=0)
        codes = codec.encode(x)
        assert codes.shape == (2, codec.config.num_quantizers, frames) and codes.dtype == torch.int64
        assert torch.equal(codes, codec.encode(padded)) and torch.equal(codes, codec.encode(x[:, None]))


@pytest.mark.parametrize(
    "shape", [(2, 0), (1, 1, 0), (2, 2, 9), (2, 9, 1), (9,), (1, 1, 1, 9), (0, 3, 4)], ids=str
)
def test_anything_but_mono_audio_is_refused_with_its_shape(shape):
    codec = random_codec("ratio-one")
    msg = rf"^codec expects mono audio \[B, T\] with T > 0, got shape {re_shape(shape)}$"
    for call in (codec.embed, codec.encode, codec):
        with pytest.raises(ModelError, match=msg):
            call(torch.zeros(shape, dtype=torch.float64))


def re_shape(shape: tuple[int, ...]) -> str:
    """How the message prints the offending shape: the squeezed ``[B, T]`` when the input was ``[B, 1, T]``."""
    if len(shape) == 3 and shape[1] == 1:
        shape = (shape[0], shape[2])
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("name", ["three-ratios", "one-channel"])
def test_forward_reconstructs_through_the_quantizer_and_crops_to_the_input(name):
    codec = random_codec(name)
    hop = math.prod(codec.config.ratios)
    ref = Reference(codec)
    x = torch.randn(2, 2 * hop + 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    T = x.shape[-1]
    with torch.no_grad():
        out = codec(x)
        out_3d = codec(x[:, None])
        q = codec.quantizer.decode(out.codes)  # [B, T', D]
        want_audio = ref.decode(q.transpose(1, 2))[:, 0, :T]
    torch.testing.assert_close(out.latent, codec.embed(x), rtol=0, atol=0)
    assert out.codes.shape == (2, codec.config.num_quantizers, 3)
    assert out.audio.shape == (2, T) and out_3d.audio.shape == (2, T)
    torch.testing.assert_close(out.audio, want_audio, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out_3d.audio, out.audio, rtol=0, atol=0)


# --- 3. decode_latent / decode: crop or pad ---------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 2, 9])
def test_decode_latent_crops_or_right_pads_the_full_decoding(batch):
    codec = random_codec("ratio-one")  # hop 4
    hop = codec.hop_length
    assert hop == 4
    ref = Reference(codec)
    for frames in (1, 3):
        q = torch.randn(batch, frames, codec.config.dim, generator=torch.Generator().manual_seed(5 + frames))
        q = q.double()
        full = frames * hop
        with torch.no_grad():
            y_full = codec.decode_latent(q)
            want = ref.decode(q.transpose(1, 2))[:, 0]
        assert y_full.shape == (batch, full)
        torch.testing.assert_close(y_full, want, rtol=1e-10, atol=1e-10)
        # lengths around the batch size too, so a length compared with the wrong axis shows
        for length in sorted({0, 1, full - 1, full, full + 1, full + 3, 2 * full + 1, batch, batch + 1}):
            with torch.no_grad():
                y = codec.decode_latent(q, length)
            keep = min(length, full)
            assert y.shape == (batch, length), (frames, length)
            torch.testing.assert_close(y[:, :keep], y_full[:, :keep], rtol=0, atol=0)
            assert torch.count_nonzero(y[:, keep:]) == 0  # the padding is zeros, on the right


def test_decode_of_codes_equals_decode_latent_of_their_vectors():
    codec = random_codec("three-ratios")
    codes = torch.randint(0, 8, (2, 2, 3), generator=torch.Generator().manual_seed(6))
    q = codec.quantizer.decode(codes)
    for length in (None, 1, 3 * 12 - 5, 3 * 12, 3 * 12 + 7):
        with torch.no_grad():
            want = codec.decode_latent(q, length)
        torch.testing.assert_close(codec.decode(codes, length), want, rtol=0, atol=0)
        assert want.shape == (2, 36 if length is None else length)


# --- 2. CodecConfig: checks, messages, arithmetic ----------------------------------------------------------------
POSITIVE = ("sample_rate", "channels", "dim", "num_quantizers", "codebook_size")


@pytest.mark.parametrize("field", POSITIVE)
def test_each_size_accepts_1_and_refuses_0_naming_the_field(field):
    assert getattr(CodecConfig(**{field: 1}), field) == 1
    for bad, shown in ((0, "0"), (-3, "-3"), (0.5, "0.5")):
        with pytest.raises(ConfigError, match=rf"^CodecConfig\.{field}={shown} must be >= 1$"):
            CodecConfig(**{field: bad})


@pytest.mark.parametrize(
    "ratios, shown", [([], r"\[\]"), ([0], r"\[0\]"), ([2, 0], r"\[2, 0\]"), ([4, -1, 2], r"\[4, -1, 2\]")]
)
def test_ratios_must_be_a_non_empty_list_of_positive_integers(ratios, shown):
    with pytest.raises(
        ConfigError, match=rf"^CodecConfig\.ratios={shown} must be a non-empty list of integers >= 1$"
    ):
        CodecConfig(ratios=ratios)


def test_ratios_of_1_are_valid():
    assert CodecConfig(ratios=[1]).hop_length == 1
    assert CodecConfig(ratios=[1, 3, 1]).hop_length == 3


@pytest.mark.parametrize("bad, shown", [(0.0, "0.0"), (1.0, "1.0"), (1.5, "1.5"), (-0.25, "-0.25")])
def test_ema_decay_must_lie_strictly_between_0_and_1(bad, shown):
    with pytest.raises(ConfigError, match=rf"^CodecConfig\.ema_decay={shown} must be in \(0, 1\)$"):
        CodecConfig(ema_decay=bad)


def test_ema_decay_just_inside_the_interval_is_accepted():
    for ok in (1e-9, 0.5, 1 - 1e-9):
        assert CodecConfig(ema_decay=ok).ema_decay == ok


def test_the_smallest_valid_codec_runs():
    """Every size at its minimum: 1 channel, one ratio of 1, a 1-d latent, one codebook of one code (0 bit/s)."""
    c = CodecConfig(sample_rate=1, channels=1, ratios=[1], dim=1, num_quantizers=1, codebook_size=1)
    assert (c.hop_length, c.frame_rate, c.bitrate()) == (1, 1.0, 0.0)
    codec = Codec(c).eval()
    with torch.no_grad():
        out = codec(torch.randn(2, 3))
    assert out.audio.shape == (2, 3) and out.latent.shape == (2, 3, 1)
    assert torch.equal(out.codes, torch.zeros(2, 1, 3, dtype=torch.int64))


@pytest.mark.parametrize(
    "kw, hop, frame_rate, bits_all, n_q, bits_n_q",
    [
        # EnCodec 24 kHz: hop 8*5*4*2 = 320, 75 frames/s; 8 books of 2^10 codes: 8 * 10 * 75 = 6000 bit/s
        (dict(sample_rate=24000), 320, 75.0, 6000.0, 2, 1500.0),
        # hop 4*4*5 = 80 at 16 kHz: 200 frames/s; 3 books of 2^8: 3 * 8 * 200 = 4800; 1 book: 1600
        (dict(ratios=[4, 4, 5], num_quantizers=3, codebook_size=256), 80, 200.0, 4800.0, 1, 1600.0),
        # 22050 / (8*8*4) = 86.1328125 frames/s; 4 books of 2^11: 44 * 86.1328125 = 3789.84375
        (
            dict(sample_rate=22050, ratios=[8, 8, 4], num_quantizers=4, codebook_size=2048),
            256,
            86.1328125,
            3789.84375,
            3,
            2842.3828125,
        ),
    ],
)
def test_hop_frame_rate_and_bitrate_by_hand(kw, hop, frame_rate, bits_all, n_q, bits_n_q):
    c = CodecConfig(**kw)
    assert c.hop_length == hop
    assert c.frame_rate == pytest.approx(frame_rate, rel=1e-12)
    assert c.bitrate() == pytest.approx(bits_all, rel=1e-12)
    assert c.bitrate(None) == pytest.approx(bits_all, rel=1e-12)
    assert c.bitrate(n_q) == pytest.approx(bits_n_q, rel=1e-12)


def test_default_config_bitrate_is_4_kbps():
    # 16 kHz, hop 8*5*4*2 = 320: 50 frames/s; 8 books of 1024 codes (10 bits): 8 * 10 * 50
    c = CodecConfig()
    assert (c.hop_length, c.frame_rate, c.bitrate(), c.bitrate(4)) == (320, 50.0, 4000.0, 2000.0)
