"""GANmix: text-conditioned GAN in the mel VAE's latent space (the thesis' system) + VAE decoder + vocoder."""

from soundsmith.families import Family


def _forward(model, b):
    """The generator on fixed noise (the same for every row) and the batch's captions, decoded to audio of the
    batch's length: ``[B, T]``."""
    T = b["audio"].shape[-1]
    frames = model.generation_frames(T)
    one = model.noise(0, frames)  # [1, *noise_shape]
    noise = one.expand(len(b["audio"]), *one.shape[1:])
    latents = model.fit_frames(model(noise, b["text_pooled"], frames), model.latent_frames(T))
    return model.latents_to_audio(latents, T)


def _build(config):
    """The tiny preset with the tiny VAE and vocoder presets as (frozen) module components."""
    from soundsmith import families
    from soundsmith.models.ganmix import GANmix
    from soundsmith.train.runconfig import load_run_config

    parts = {}
    for name in ("vae", "vocoder"):
        family = families.get(name)
        parts[name] = family.model_class()(load_run_config(family.tiny_config_path()).model)
    return GANmix(config, components=parts)


FAMILY = Family(
    name="ganmix",
    config="soundsmith.models.ganmix:GANmixConfig",
    model="soundsmith.models.ganmix:GANmix",
    objective="soundsmith.train.objectives.ganmix:GANmixObjective",
    pipeline="soundsmith.pipelines.ganmix:GANmixPipeline",
    kind="generator",
    description="GANmix (thesis): text-conditioned GAN over mel-VAE latents, one forward pass per clip + vocoder",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, T),
    contract_build=_build,
)
