"""Latent diffusion: text -> mel-VAE latents (time-token transformer denoiser) -> mel VAE decoder -> vocoder."""

from soundsmith.families import Family


def _forward(model, b):
    """One denoiser call at t = 0.5 on the batch's latents, decoded to audio of the batch's length: ``[B, T]``."""
    import torch

    latents = b["latents"]
    t = torch.full((latents.shape[0],), 0.5)
    pred = model(latents, t, b["text_tokens"], b["text_mask"], b["text_pooled"])
    return model.latents_to_audio(pred, b["audio"].shape[-1])


def _build(config):
    """The tiny preset with the tiny VAE and vocoder presets as (frozen) module components."""
    from soundsmith import families
    from soundsmith.models.latent_diffusion import LatentDiffusion
    from soundsmith.train.runconfig import load_run_config

    parts = {}
    for name in ("vae", "vocoder"):
        family = families.get(name)
        parts[name] = family.model_class()(load_run_config(family.tiny_config_path()).model)
    return LatentDiffusion(config, components=parts)


FAMILY = Family(
    name="latent_diffusion",
    config="soundsmith.models.latent_diffusion:LatentDiffusionConfig",
    model="soundsmith.models.latent_diffusion:LatentDiffusion",
    objective="soundsmith.train.objectives.latent_diffusion:LatentDiffusionObjective",
    pipeline="soundsmith.pipelines.latent_diffusion:LatentDiffusionPipeline",
    kind="generator",
    description="text-to-audio latent diffusion: time-token transformer over mel-VAE latents + vocoder",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, T),
    contract_build=_build,
)
