"""GANmix: text-conditioned GAN in the mel VAE's latent space (the thesis' system) + VAE decoder + vocoder."""

from soundsmith.families import ConditioningProbe, Family

# The contract build leaves the global torch RNG seeded with this, so that the discriminator the objective builds
# right after the model (its first random draws) is one the reference loss can build again.
_DISC_SEED = 17


def _forward(model, b):
    """The generator on fixed noise (the same for every row) and the batch's captions, decoded to audio of the
    batch's length: ``[B, T]``."""
    T = b["audio"].shape[-1]
    frames = model.generation_frames(T)
    one = model.noise(0, frames)  # [1, *noise_shape]
    noise = one.expand(len(b["audio"]), *one.shape[1:])
    made = model(noise, b["text_pooled"], frames, b.get("text_tokens"), b.get("text_mask"))
    latents = model.fit_frames(made, model.latent_frames(T))
    return model.latents_to_audio(latents, T)


def reference_loss(model, batch) -> float:
    """The generator's loss (optimizer 0) recomputed by hand in float64 (for ``contract_reference_loss``).

    The objective's draws are replayed: noise from its generator for ``(seed 0, step 0, rank 0, "fake")``,
    ``[B, noise_dim]`` (mlp) or ``[B, noise_dim, T']`` (conv), with ``T'`` the batch's latent frames; the
    discriminator is the one the objective built from the global RNG that the contract build left at
    ``_DISC_SEED`` (built again here under a forked RNG). The generator's latents for the batch's pooled captions
    are scored, and the game's generator loss taken by hand from the scores ``y``: bce with a tanh output read as
    a probability, ``-mean(max(log((1 + y) / 2), -100))`` (torch's BCE clamp); as a logit (or a linear output),
    ``mean(log(1 + exp(-y)))``; nonsaturating ``mean(softplus(-y))``; hinge ``-mean(y)``.
    """
    import zlib

    import numpy as np
    import torch

    from soundsmith.models.ganmix import Discriminator

    cfg = model.config
    frames = batch["latents"].shape[-1]
    shape = (cfg.generator.noise_dim,) if cfg.generator.arch == "mlp" else (cfg.generator.noise_dim, frames)
    gen = torch.Generator().manual_seed(zlib.crc32(b"0:0:0:fake"))
    noise = torch.randn((len(batch["latents"]), *shape), generator=gen)
    with torch.random.fork_rng():
        torch.manual_seed(_DISC_SEED)
        disc = Discriminator(cfg).eval()
    with torch.no_grad():
        made = model(noise, batch["text_pooled"], frames, batch.get("text_tokens"), batch.get("text_mask"))
        y = disc(made, batch["text_pooled"]).double().numpy()  # [B]
    tanh = cfg.discriminator.output == "tanh"
    if cfg.loss == "bce" and tanh and cfg.tanh_as == "probability":
        return float(np.mean(-np.maximum(np.log((1.0 + y) / 2.0), -100.0)))
    if cfg.loss in ("bce", "nonsaturating"):
        return float(np.mean(np.logaddexp(0.0, -y)))
    return float(-np.mean(y))  # hinge


def _build(config):
    """The tiny preset with the tiny VAE and vocoder presets as (frozen) module components; leaves the global
    torch RNG at ``_DISC_SEED`` (for the discriminator that the objective builds next, see ``reference_loss``)."""
    import torch

    from soundsmith import families
    from soundsmith.models.ganmix import GANmix
    from soundsmith.train.runconfig import load_run_config

    parts = {}
    for name in ("vae", "vocoder"):
        family = families.get(name)
        parts[name] = family.model_class()(load_run_config(family.tiny_config_path()).model)
    model = GANmix(config, components=parts)
    torch.manual_seed(_DISC_SEED)
    return model


def _bump_text(b):
    """Add 1 to the first clip's pooled caption."""
    b["text_pooled"][0] += 1.0
    return b


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
    contract_reference_loss=reference_loss,
    # the text enters the whole latent at once (concatenated to the noise, or FiLM in every conv block)
    contract_conditioning=(ConditioningProbe("text_pooled", vary=_bump_text, expect=lambda c, T: (0, None)),),
)
