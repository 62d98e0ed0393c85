"""Mel VAE: KL-regularised convolutional autoencoder over log-mel (the latent space of the latent families)."""

from soundsmith.families import Family

FAMILY = Family(
    name="vae",
    config="soundsmith.models.vae:VAEConfig",
    model="soundsmith.models.vae:MelVAE",
    objective="soundsmith.train.objectives.vae:VAEObjective",
    pipeline=None,
    kind="autoencoder",
    description="mel VAE: log-mel <-> latent [latent_channels, frames / 4] (1-D convs over time, KL-regularised)",
    contract_forward=lambda model, b: model(b["mel"]),
    contract_shape=lambda cfg, B, T: (B, cfg.n_mels, T // cfg.hop_length + 1),
)
