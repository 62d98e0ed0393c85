"""Each sampler is built on the schedule it is given: the diffusers scheduler's class and every setting that
decides its noise levels come from the NoiseSchedule (a setting left at diffusers' default would pass every test
run on the default schedule), partial runs tell the scheduler where they begin, and UniPC runs on latents of any
rank. Settings are non-default on purpose: 500 training steps, a scaled-linear beta schedule, other beta ends, a
flow shift of 3."""

from __future__ import annotations

import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.sampling.diffusion import SAMPLERS, DiffusionSampler, NoiseSchedule

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SCHEDULE = dict(
    num_train_timesteps=500, beta_schedule="scaled_linear", beta_start=2e-4, beta_end=0.03, shift=3.0
)
VP = {"num_train_timesteps": 500, "beta_schedule": "scaled_linear", "beta_start": 2e-4, "beta_end": 0.03}
EXPECTED = {
    ("ddim", "v_prediction"): (
        "DDIMScheduler",
        {**VP, "prediction_type": "v_prediction", "clip_sample": False},
    ),
    ("euler", "epsilon"): ("EulerDiscreteScheduler", {**VP, "prediction_type": "epsilon"}),
    ("unipc", "v_prediction"): ("UniPCMultistepScheduler", {**VP, "prediction_type": "v_prediction"}),
    ("dpmpp", "epsilon"): (
        "DPMSolverMultistepScheduler",
        {**VP, "prediction_type": "epsilon", "algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    ("dpmpp1", "flow"): (
        "DPMSolverMultistepScheduler",
        {
            "num_train_timesteps": 500,
            "prediction_type": "flow_prediction",
            "use_flow_sigmas": True,
            "flow_shift": 3.0,
            "solver_order": 1,
        },
    ),
    ("flow_euler", "flow"): ("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 500, "shift": 3.0}),
    ("unipc", "flow"): (
        "UniPCMultistepScheduler",
        {
            "num_train_timesteps": 500,
            "prediction_type": "flow_prediction",
            "use_flow_sigmas": True,
            "flow_shift": 3.0,
        },
    ),
    ("dpmpp", "flow"): (
        "DPMSolverMultistepScheduler",
        {
            "num_train_timesteps": 500,
            "prediction_type": "flow_prediction",
            "use_flow_sigmas": True,
            "flow_shift": 3.0,
            "solver_order": 2,
        },
    ),
}


@pytest.mark.parametrize(("name", "kind"), list(EXPECTED), ids=[f"{n}-{k}" for n, k in EXPECTED])
def test_the_scheduler_is_built_on_the_given_schedule(name, kind):
    sampler = DiffusionSampler(name, NoiseSchedule(prediction_type=kind, **SCHEDULE))
    cls, settings = EXPECTED[(name, kind)]
    assert type(sampler.scheduler).__name__ == cls
    config = sampler.scheduler.config
    assert {k: config[k] for k in settings} == pytest.approx(settings)
    assert len(sampler.timesteps) == 0  # no steps until set_steps
    if kind != "flow":  # VP samplers start at the noisiest training step ("trailing" spacing)
        assert config["timestep_spacing"] == "trailing"
        sampler.set_steps(10)
        assert int(sampler.timesteps[0]) == 499


def test_every_sampler_and_prediction_is_covered_above():
    assert {(n, k) for n, kinds in SAMPLERS.items() for k in kinds} - set(EXPECTED) == {
        ("ddim", "epsilon"),
        ("euler", "v_prediction"),
        ("unipc", "epsilon"),
        ("dpmpp", "v_prediction"),
        ("dpmpp1", "epsilon"),
        ("dpmpp1", "v_prediction"),
    }  # the same builders as their listed siblings, with the other prediction type


@pytest.mark.parametrize(("name", "kind"), [("euler", "epsilon"), ("dpmpp", "flow"), ("unipc", "flow")])
def test_a_partial_run_tells_the_scheduler_where_it_begins(name, kind):
    sampler = DiffusionSampler(name, NoiseSchedule(prediction_type=kind, **SCHEDULE))
    sampler.set_steps(10, strength=0.3)  # keep the last 3 of 10 steps
    begin = 7 * sampler.scheduler.order
    assert sampler.scheduler.begin_index == begin
    torch.testing.assert_close(sampler.timesteps, sampler.scheduler.timesteps[begin:])


def test_unknown_samplers_and_bad_step_counts_are_named():
    with pytest.raises(
        ConfigError,
        match=r"^unknown sampler 'heun'; choose one of ddim, dpmpp, dpmpp1, euler, flow_euler, unipc$",
    ):
        DiffusionSampler("heun")
    sampler = DiffusionSampler("ddim")
    for steps in (0, True, 1.5, "4"):
        with pytest.raises(ConfigError, match=rf"^steps must be an integer >= 1, got {steps!r}$"):
            sampler.set_steps(steps)
    sampler.set_steps(1)
    assert len(sampler.timesteps) == 1


def test_unipc_steps_latents_of_any_rank_as_it_steps_their_values():
    # UniPC's update is elementwise: a [B, C, F, T] latent steps as its flattened values do
    sched = NoiseSchedule(prediction_type="flow", shift=3.0)
    g = torch.Generator().manual_seed(0)
    x4 = torch.randn(2, 3, 4, 5, generator=g)

    def model(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x - 0.1

    runs = []
    for x in (x4, x4.reshape(2, -1)):
        sampler = DiffusionSampler("unipc", sched)
        sampler.set_steps(4)
        for t in sampler.timesteps:
            x = sampler.step(model(x), t, x)
        runs.append(x.reshape(2, 3, 4, 5))
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], x4)


def test_dpmpp1_is_the_flow_euler_step_on_dpmpps_grid():
    """First-order DPM-Solver++ over the flow path: ``x + (sigma_next - sigma) v`` at each of DPM-Solver++'s own
    noise levels (what a step-distilled student is trained to take)."""
    schedule = NoiseSchedule(prediction_type="flow", **SCHEDULE)
    first, second = DiffusionSampler("dpmpp1", schedule), DiffusionSampler("dpmpp", schedule)
    first.set_steps(5)
    second.set_steps(5)
    sigmas = first.scheduler.sigmas
    assert torch.allclose(sigmas, second.scheduler.sigmas)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    for i, t in enumerate(first.timesteps):
        v = torch.randn(2, 3, 4, generator=gen)
        expected = x + (sigmas[i + 1] - sigmas[i]) * v
        x = first.step(v, t, x)
        assert torch.allclose(x, expected, atol=1e-5)
        y_next = second.step(v, t, y)
        if i == 1:  # the second-order step differs from the first-order one from its second step on
            assert not torch.allclose(y_next, y + (sigmas[i + 1] - sigmas[i]) * v, atol=1e-4)
        y = y_next
