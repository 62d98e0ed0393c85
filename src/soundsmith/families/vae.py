"""Mel VAE: KL-regularised convolutional autoencoder over log-mel (the latent space of the latent families)."""

from soundsmith.families import Family


def reference_loss(model, batch) -> float:
    """The eval-mode loss recomputed in float64 numpy (for ``contract_reference_loss``): mean |decode(mean) - mel|
    + 1e-5 x mean KL(N(mean, exp(logvar)) || N(0, 1))."""
    import numpy as np
    import torch

    with torch.no_grad():
        mean, logvar = (t.double().numpy() for t in model.encode(batch["mel"]))
        rec = model.decode(torch.from_numpy(mean).float(), batch["mel"].shape[-1]).double().numpy()
    kl = 0.5 * np.mean(mean**2 + np.exp(logvar) - 1.0 - logvar)
    return float(np.mean(np.abs(rec - batch["mel"].double().numpy())) + 1e-5 * kl)


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
    contract_reference_loss=reference_loss,
)
