"""Vocoder: log-mel -> waveform (Vocos-style ConvNeXt backbone + inverse-STFT head), trained as a GAN."""

from soundsmith.families import Family

FAMILY = Family(
    name="vocoder",
    config="soundsmith.models.vocoder:VocoderConfig",
    model="soundsmith.models.vocoder:Vocoder",
    objective="soundsmith.train.objectives.vocoder:VocoderObjective",
    pipeline=None,
    kind="vocoder",
    description="neural vocoder, log-mel -> waveform (ConvNeXt + inverse STFT, Vocos-style; GAN-trained)",
    contract_forward=lambda model, b: model(b["mel"]),
    contract_shape=lambda cfg, B, T: (B, (T // cfg.hop_length + 1) * cfg.hop_length),
)
