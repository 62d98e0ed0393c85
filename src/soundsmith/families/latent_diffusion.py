"""Latent diffusion: text -> mel-VAE latents (time-token transformer denoiser) -> mel VAE decoder -> vocoder."""

from soundsmith.families import ConditioningProbe, Family


def _forward(model, b):
    """One denoiser call at t = 0.5 on the batch's latents, decoded to audio of the batch's length: ``[B, T]``."""
    import torch

    latents = b["latents"]
    t = torch.full((latents.shape[0],), 0.5)
    pred = model(latents, t, b["text_tokens"], b["text_mask"], b["text_pooled"])
    return model.latents_to_audio(pred, b["audio"].shape[-1])


def reference_loss(model, batch) -> float:
    """The flow-matching loss recomputed by hand in float64 (for ``contract_reference_loss``): the same draws as the
    objective (its generator for ``(seed 0, step 0, rank 0, "step")``: ``u`` in float64 (uniform, or the sigmoid
    of a normal draw), noise, drop mask), then ``s = shift u / (1 + (shift - 1) u)``, ``x_s = (1 - s) x0 + s noise``, target ``noise - x0``, and
    the mean squared error of the denoiser's prediction at time ``s``."""
    import zlib

    import numpy as np
    import torch

    x0 = batch["latents"]
    n, cfg = x0.shape[0], model.config
    gen = torch.Generator().manual_seed(zlib.crc32(b"0:0:0:step"))
    if cfg.timestep_sampling == "logit_normal":
        u = 1.0 / (1.0 + np.exp(-torch.randn(n, generator=gen, dtype=torch.float64).numpy()))
    else:
        u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).double().numpy()
    drop = torch.rand(n, generator=gen) < cfg.cond_drop_prob
    s = cfg.shift * u / (1.0 + (cfg.shift - 1.0) * u)
    s_b = s.reshape(-1, *([1] * (x0.ndim - 1)))
    x0_np = x0.double().numpy()
    x_s = (1.0 - s_b) * x0_np + s_b * noise
    with torch.no_grad():
        pred = model(
            torch.from_numpy(x_s).float(),
            torch.from_numpy(s).float(),
            batch["text_tokens"],
            batch["text_mask"],
            batch["text_pooled"],
            drop,
        )
    return float(np.mean((pred.double().numpy() - (noise - x0_np)) ** 2))


def _bump(key: str, index):
    """A probe's ``vary``: add 1 to ``batch[key][index]`` (a real text token, or the pooled vector)."""

    def vary(b):
        b[key][index] += 1.0
        return b

    return vary


def _build(config):
    """The tiny preset with the tiny VAE and vocoder presets as (frozen) module components; the denoiser's
    zero-initialised weights get small random values, so that its output depends on every input."""
    import torch

    from soundsmith import families
    from soundsmith.models.latent_diffusion import LatentDiffusion
    from soundsmith.train.runconfig import load_run_config

    parts = {}
    for name in ("vae", "vocoder"):
        family = families.get(name)
        parts[name] = family.model_class()(load_run_config(family.tiny_config_path()).model)
    model = LatentDiffusion(config, components=parts)
    # AdaLN-zero gates and the zero output layer would make the tests' model ignore its inputs
    with torch.no_grad():
        for p in model.denoiser.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return model


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
    contract_reference_loss=reference_loss,
    # the denoiser attends over the whole clip: a change in the text changes every output sample
    contract_conditioning=(
        ConditioningProbe("text_tokens", vary=_bump("text_tokens", (0, 0)), expect=lambda c, T: (0, None)),
        ConditioningProbe("text_pooled", vary=_bump("text_pooled", 0), expect=lambda c, T: (0, None)),
    ),
)
