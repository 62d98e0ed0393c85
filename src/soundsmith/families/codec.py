"""Codec: SEANet encoder/decoder + residual VQ (SoundStream / EnCodec), audio <-> discrete tokens."""

from soundsmith.families import Family

FAMILY = Family(
    name="codec",
    config="soundsmith.models.codec:CodecConfig",
    model="soundsmith.models.codec:Codec",
    objective="soundsmith.train.objectives.codec:CodecObjective",
    pipeline=None,
    kind="autoencoder",
    description="neural audio codec: waveform <-> RVQ tokens [n_q, T / hop] (SEANet convs, EMA codebooks, GAN)",
    contract_forward=lambda model, b: model(b["audio"]).audio,
    contract_shape=lambda cfg, B, T: (B, T),
)
