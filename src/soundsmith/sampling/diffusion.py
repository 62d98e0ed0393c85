"""Samplers for iterative denoisers: diffusers' schedulers behind one small interface.

Two pieces, one definition of the forward process:

* :class:`NoiseSchedule` (a config dataclass, saved with a denoiser): how training noises data and what the
  network predicts. The network always sees ``x_t = alpha(t) * x0 + sigma(t) * noise`` and the timestep ``t``:
  variance preserving (``alpha^2 + sigma^2 = 1``, integer ``t`` in ``[0, T)``) for ``epsilon`` and
  ``v_prediction``; the straight path ``alpha = 1 - s, sigma = s`` with ``t = s * T`` for ``flow``.
  Targets: ``epsilon`` -> ``noise``; ``v_prediction`` -> ``alpha * noise - sigma * x0``; ``flow`` ->
  ``noise - x0``. :meth:`NoiseSchedule.training_pair` draws what a training step needs.
* :class:`DiffusionSampler`: one of ``ddim``, ``dpmpp`` (DPM-Solver++ 2M), ``dpmpp1`` (DPM-Solver++ first order:
  DDIM's step, or the flow's Euler step, on DPM-Solver++'s timesteps: what a step-distilled student samples
  with), ``euler`` (Euler discrete), ``flow_euler`` (flow-matching Euler) or ``unipc`` (UniPC, order 2 with its
  corrector) over the same schedule.
  A pipeline's loop reads::

      sampler = DiffusionSampler("dpmpp", schedule)
      sampler.set_steps(25)                                   # or set_steps(25, strength=0.6) for img2img
      x = sampler.init_noise((B, C, T), generator)            # or sampler.add_noise(x0, noise, sampler.timesteps[0])
      for t in sampler.timesteps:
          out = model(sampler.scale_model_input(x, t), t)    # the network sees alpha(t) x0 + sigma(t) noise
          x = sampler.step(out, t, x, generator)

Each scheduler keeps its own state space (Euler's is ``x0 + (sigma/alpha) * noise``); ``scale_model_input`` maps it
to the network's view, so one trained network serves every VP sampler. Randomness comes only from the explicit
``torch.Generator`` arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from soundsmith.errors import ConfigError

PREDICTION_TYPES = ("epsilon", "v_prediction", "flow")
TIMESTEP_SAMPLING = ("uniform", "logit_normal")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
# sampler name -> prediction types it runs
SAMPLERS: dict[str, tuple[str, ...]] = {
    "ddim": ("epsilon", "v_prediction"),
    "dpmpp": ("epsilon", "v_prediction", "flow"),
    "dpmpp1": ("epsilon", "v_prediction", "flow"),
    "euler": ("epsilon", "v_prediction"),
    "flow_euler": ("flow",),
    "unipc": ("epsilon", "v_prediction", "flow"),
}


@dataclass(frozen=True)
class NoiseSchedule:
    """The forward (noising) process a denoiser is trained with, and what it predicts.

    ``beta_*`` describe the variance-preserving schedule (``epsilon``/``v_prediction``; diffusers' definitions);
    ``shift`` warps flow timesteps toward the noisy end (``s' = shift * s / (1 + (shift - 1) * s)``, 1 = none).
    ``timestep_sampling``: how training draws ``u`` in (0, 1) before the shift: ``uniform``, or ``logit_normal``
    (``u = sigmoid(n)``, ``n ~ N(0, 1)``: more steps at mid noise, fewer at the ends, as SD3 found best for
    rectified flow). VP timesteps are ``floor(u * T)``.
    """

    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    shift: float = 1.0
    timestep_sampling: str = "uniform"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(
                f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}; got {self.prediction_type!r}"
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(
                f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}; got {self.beta_schedule!r}"
            )
        if isinstance(self.num_train_timesteps, bool) or not (
            isinstance(self.num_train_timesteps, int) and self.num_train_timesteps >= 2
        ):
            raise ConfigError(
                f"num_train_timesteps must be an integer >= 2, got {self.num_train_timesteps!r}"
            )
        if not (0 < self.beta_start < self.beta_end < 1):
            raise ConfigError(
                f"need 0 < beta_start < beta_end < 1, got beta_start={self.beta_start}, beta_end={self.beta_end}"
            )
        if not (math.isfinite(self.shift) and self.shift > 0):
            raise ConfigError(f"shift must be a positive number, got {self.shift!r}")
        if self.timestep_sampling not in TIMESTEP_SAMPLING:
            raise ConfigError(
                f"timestep_sampling must be one of {', '.join(TIMESTEP_SAMPLING)}; got {self.timestep_sampling!r}"
            )

    @property
    def is_flow(self) -> bool:
        return self.prediction_type == "flow"

    @cached_property
    def _vp_ratio(self) -> np.ndarray:
        """``sigma / alpha`` at the integer timesteps ``0..T-1`` (diffusers' Euler sigmas), float64 ``[T]``."""
        from diffusers import DDPMScheduler

        ref = DDPMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
        )
        acp = ref.alphas_cumprod.double().numpy()
        return np.sqrt((1.0 - acp) / acp)

    def alpha_sigma(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``(alpha, sigma)`` at timestep(s) ``t`` (any shape; float64): the network's input is
        ``alpha * x0 + sigma * noise``. Fractional VP timesteps interpolate ``sigma/alpha`` linearly, as diffusers'
        Euler scheduler does."""
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        if self.is_flow:
            s = t / self.num_train_timesteps
            return 1.0 - s, s
        ratio = torch.from_numpy(
            np.asarray(np.interp(t.numpy(), np.arange(self.num_train_timesteps), self._vp_ratio))
        )
        alpha = 1.0 / torch.sqrt(1.0 + ratio**2)
        return alpha, ratio * alpha

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` training timesteps: integers in ``[0, T)`` (VP), or ``T * shift(u)`` (flow), ``u`` drawn as
        ``timestep_sampling`` says (uniform: ``u ~ U(0, 1)``, VP integers uniform). ``[n]`` on the CPU (long for VP,
        float32 for flow)."""
        if self.timestep_sampling == "logit_normal":
            u = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float64))
        elif self.is_flow:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            return torch.randint(0, self.num_train_timesteps, (n,), generator=generator)
        if not self.is_flow:
            return (u * self.num_train_timesteps).long().clamp_(0, self.num_train_timesteps - 1)
        s = self.shift * u / (1.0 + (self.shift - 1.0) * u)
        return (s * self.num_train_timesteps).float()

    def noisy(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """The network's input ``alpha(t) x0 + sigma(t) noise``; ``t [B]`` broadcast over ``x0 [B, ...]``."""
        alpha, sigma = (v.to(x0.device, x0.dtype) for v in self.alpha_sigma(t))
        shape = (-1,) + (1,) * (x0.ndim - 1)
        return alpha.view(shape) * x0 + sigma.view(shape) * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network should output at ``noisy(x0, noise, t)`` for this ``prediction_type``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.is_flow:
            return noise - x0
        alpha, sigma = (v.to(x0.device, x0.dtype) for v in self.alpha_sigma(t))
        shape = (-1,) + (1,) * (x0.ndim - 1)
        return alpha.view(shape) * noise - sigma.view(shape) * x0

    def training_pair(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_t, t, target)`` for a batch ``x0 [B, ...]``: timesteps and noise drawn first (from ``generator`` on
        the CPU), then applied. Train with ``mse(model(x_t, t), target)``."""
        t = self.sample_timesteps(x0.shape[0], generator)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return self.noisy(x0, noise, t), t.to(x0.device), self.target(x0, noise, t)


class DiffusionSampler:
    """One diffusers scheduler (``name`` in :data:`SAMPLERS`) over ``schedule``; see the module docstring."""

    def __init__(self, name: str, schedule: NoiseSchedule | None = None) -> None:
        schedule = schedule or NoiseSchedule()
        if name not in SAMPLERS:
            raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
        if schedule.prediction_type not in SAMPLERS[name]:
            fits = [n for n, kinds in SAMPLERS.items() if schedule.prediction_type in kinds]
            raise ConfigError(
                f"sampler {name!r} does not run prediction_type {schedule.prediction_type!r}; "
                f"samplers that do: {', '.join(fits)}"
            )
        self.name, self.schedule = name, schedule
        self.scheduler = _build(name, schedule)
        self.timesteps: Tensor = torch.zeros(0)

    def set_steps(self, steps: int, strength: float = 1.0, device: torch.device | str | None = None) -> None:
        """Use ``steps`` steps; ``strength < 1`` keeps only the last ``round(steps * strength)`` of them (start
        from :meth:`add_noise` of an input at ``timesteps[0]``: img2img, inpainting). ``strength=0``: no steps."""
        if isinstance(steps, bool) or not (isinstance(steps, int) and steps >= 1):
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
        if not (0.0 <= strength <= 1.0):
            raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
        self.scheduler.set_timesteps(steps, device=device)
        keep = min(steps, int(round(steps * strength)))
        begin = (steps - keep) * self.scheduler.order
        self.timesteps = self.scheduler.timesteps[begin:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(begin)

    def init_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Pure noise in the scheduler's space (scaled by its ``init_noise_sigma``), drawn on the CPU."""
        noise = torch.randn(shape, generator=generator, dtype=dtype).to(device)
        return noise * float(getattr(self.scheduler, "init_noise_sigma", 1.0))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
        """``x0`` noised to timestep ``t`` (one value) in the scheduler's space: the start of a partial run."""
        alpha, sigma = (float(v) for v in self.schedule.alpha_sigma(torch.as_tensor(t).reshape(())))
        if self.name == "euler":  # Euler's state is x0 + (sigma/alpha) * noise
            return x0 + (sigma / alpha) * noise
        return alpha * x0 + sigma * noise

    def scale_model_input(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The network's view ``alpha(t) x0 + sigma(t) noise`` of the scheduler's state ``x``."""
        if self.name == "euler":
            return self.scheduler.scale_model_input(x, t)
        return x

    def step(
        self, model_output: Tensor, t: Tensor | float, x: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """One denoising step from ``x`` at ``t`` to the next timestep (``x_prev``, same shape)."""
        if self.name == "unipc":  # deterministic (its step takes no generator); its einsum needs >= 3 dims
            shape = x.shape
            out = self.scheduler.step(model_output.reshape(shape[0], 1, -1), t, x.reshape(shape[0], 1, -1),
                                      return_dict=False)[0]  # fmt: skip
            return out.reshape(shape)
        return self.scheduler.step(model_output, t, x, generator=generator, return_dict=False)[0]


def _build(name: str, schedule: NoiseSchedule):  # type: ignore[no-untyped-def]
    """The diffusers scheduler for ``name`` (imported here: diffusers is heavy and only samplers need it)."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
    )

    if name == "flow_euler":
        return FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=schedule.num_train_timesteps, shift=schedule.shift
        )
    vp = dict(
        num_train_timesteps=schedule.num_train_timesteps,
        beta_schedule=schedule.beta_schedule,
        beta_start=schedule.beta_start,
        beta_end=schedule.beta_end,
        timestep_spacing="trailing",  # the first step starts at t = T - 1, the noisiest
    )
    if name == "ddim":
        return DDIMScheduler(**vp, prediction_type=schedule.prediction_type, clip_sample=False)
    if name == "euler":
        return EulerDiscreteScheduler(**vp, prediction_type=schedule.prediction_type)
    if name == "unipc":
        from diffusers import UniPCMultistepScheduler

        if schedule.is_flow:
            return UniPCMultistepScheduler(
                num_train_timesteps=schedule.num_train_timesteps,
                prediction_type="flow_prediction",
                use_flow_sigmas=True,
                flow_shift=schedule.shift,
            )
        return UniPCMultistepScheduler(**vp, prediction_type=schedule.prediction_type)
    order = 1 if name == "dpmpp1" else 2
    if schedule.is_flow:  # dpmpp over the flow path
        return DPMSolverMultistepScheduler(
            num_train_timesteps=schedule.num_train_timesteps,
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            flow_shift=schedule.shift,
            solver_order=order,
        )
    return DPMSolverMultistepScheduler(
        **vp, prediction_type=schedule.prediction_type, algorithm_type="dpmsolver++", solver_order=order
    )
