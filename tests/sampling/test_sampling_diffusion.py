"""Diffusion samplers on 1-D Gaussian data, where the exact denoiser is known in closed form.

For ``x0 ~ N(mu, s^2)`` and ``x_t = a x0 + b eps``: ``E[x0 | x_t] = mu + a s^2 (x_t - a mu) / (a^2 s^2 + b^2)`` and
``E[eps | x_t] = (x_t - a E[x0 | x_t]) / b``. Plugged into each sampler as its "network", a correct sampler returns
samples distributed as ``N(mu, s^2)``.
"""

import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.sampling.diffusion import SAMPLERS, DiffusionSampler, NoiseSchedule

# diffusers' Euler scheduler warns about numpy 2's copy keyword; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

MU, S, N = 1.5, 0.4, 20_000
CASES = [(name, kind) for name, kinds in SAMPLERS.items() for kind in kinds]
# First-order samplers shrink the spread a little at each step (about 7 % at 50 steps for DDIM/Euler here, 2 % at
# 200); DPM-Solver++ (2nd order) is within 1 % at 50 steps.
STEPS = {"ddim": 200, "dpmpp": 50, "dpmpp1": 200, "euler": 200, "flow_euler": 200, "unipc": 50}
MEAN_TOL = 5 * S / N**0.5  # five standard errors of a mean of N samples (0.035 S)


def exact_model(schedule: NoiseSchedule, mu: float = MU, s: float = S):
    """The ideal network for N(mu, s^2) data: input ``a x0 + b eps`` at ``t`` -> eps, v or flow velocity."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, b = (float(v) for v in schedule.alpha_sigma(t))
        x = x_t.double()
        x0 = mu + a * s * s * (x - a * mu) / (a * a * s * s + b * b)
        eps = (x - a * x0) / b
        out = {"epsilon": eps, "v_prediction": a * eps - b * x0, "flow": eps - x0}[schedule.prediction_type]
        return out.to(x_t.dtype)

    return model


def run(sampler: DiffusionSampler, model, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    for t in sampler.timesteps:
        x = sampler.step(model(sampler.scale_model_input(x, t), t), t, x, generator)
    return x


def make(name: str, kind: str) -> DiffusionSampler:
    return DiffusionSampler(name, NoiseSchedule(prediction_type=kind))


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_sampler_reaches_the_data_distribution(name, kind):
    sampler = make(name, kind)
    sampler.set_steps(STEPS[name])
    g = torch.Generator().manual_seed(0)
    x = run(sampler, exact_model(sampler.schedule), sampler.init_noise((N,), g, dtype=torch.float64), g)
    assert float(x.mean()) == pytest.approx(MU, abs=MEAN_TOL)
    assert float(x.std()) == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize(
    ("name", "kind"), [("ddim", "v_prediction"), ("euler", "epsilon"), ("flow_euler", "flow")]
)
def test_wrong_model_gives_the_wrong_distribution(name, kind):
    # The same check fails for a network trained on other data: the tolerance above can tell them apart.
    sampler = make(name, kind)
    sampler.set_steps(STEPS[name])
    g = torch.Generator().manual_seed(0)
    model = exact_model(sampler.schedule, mu=MU, s=S * 1.1)
    x = run(sampler, model, sampler.init_noise((N,), g, dtype=torch.float64), g)
    assert abs(float(x.std()) - S) > 0.05 * S


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_partial_noising_from_data_keeps_the_distribution(name, kind):
    # img2img with x0 drawn from the data: noised to the start of a strength-0.6 run, x is a sample of the true
    # marginal there, so the remaining steps must end at N(mu, s^2) again.
    sampler = make(name, kind)
    sampler.set_steps(STEPS[name], strength=0.6)
    assert len(sampler.timesteps) == round(0.6 * STEPS[name])
    g = torch.Generator().manual_seed(1)
    x0 = MU + S * torch.randn(N, generator=g, dtype=torch.float64)
    noise = torch.randn(N, generator=g, dtype=torch.float64)
    x = run(sampler, exact_model(sampler.schedule), sampler.add_noise(x0, noise, sampler.timesteps[0]), g)
    assert float(x.mean()) == pytest.approx(MU, abs=MEAN_TOL)
    assert float(x.std()) == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize("name", ["ddim", "euler", "flow_euler"])
def test_strength_moves_a_point_toward_the_data(name):
    sampler = make(name, SAMPLERS[name][0])
    model = exact_model(sampler.schedule)
    start = torch.full((4000,), -1.0, dtype=torch.float64)  # an input far from the data (mean 1.5)
    means, stds = [], []
    for strength in (0.0, 0.3, 0.7, 1.0):
        sampler.set_steps(100, strength=strength)
        g = torch.Generator().manual_seed(2)
        if len(sampler.timesteps) == 0:
            x = start.clone()
        else:
            noise = torch.randn(start.shape, generator=g, dtype=torch.float64)
            x = run(sampler, model, sampler.add_noise(start, noise, sampler.timesteps[0]), g)
        means.append(float(x.mean()))
        stds.append(float(x.std()))
    assert means[0] == -1.0 and stds[0] == 0.0
    assert means[0] < means[1] < means[2] < means[3]
    assert means[3] == pytest.approx(MU, abs=0.05)  # full strength forgets the input
    assert 0 < stds[1] < stds[2] and stds[3] == pytest.approx(S, rel=0.05)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_same_generator_same_samples(name, kind):
    outs = []
    for seed in (5, 5, 6):
        sampler = make(name, kind)
        sampler.set_steps(8)
        g = torch.Generator().manual_seed(seed)
        outs.append(run(sampler, exact_model(sampler.schedule), sampler.init_noise((64,), g), g))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "flow"])
def test_training_pair_matches_the_definitions(kind):
    schedule = NoiseSchedule(prediction_type=kind)
    x0 = torch.randn(512, 3)
    g = torch.Generator().manual_seed(0)
    x_t, t, target = schedule.training_pair(x0, g)
    g = torch.Generator().manual_seed(0)
    t_again = schedule.sample_timesteps(512, g)
    noise = torch.randn(x0.shape, generator=g)
    assert torch.equal(t, t_again)
    a, b = (v.float()[:, None] for v in schedule.alpha_sigma(t))
    assert torch.allclose(x_t, a * x0 + b * noise, atol=1e-6)
    # the exact denoiser for these targets recovers x0 and noise from (x_t, target)
    if kind == "epsilon":
        assert torch.equal(target, noise)
    elif kind == "v_prediction":
        assert torch.allclose(a * x_t - b * target, x0, atol=1e-5)  # x0 = a x_t - b v (a^2 + b^2 = 1)
    else:
        assert torch.allclose(x_t - b * target, x0, atol=1e-5)  # x_t = (1 - b) x0 + b noise
    lo, hi = float(t.min()), float(t.max())
    assert 0 <= lo and hi <= schedule.num_train_timesteps and hi - lo > 0.5 * schedule.num_train_timesteps


@pytest.mark.parametrize("kind", ["flow", "epsilon"])
def test_logit_normal_timesteps_crowd_the_middle(kind):
    T = 1000
    draws = {
        how: NoiseSchedule(prediction_type=kind, timestep_sampling=how).sample_timesteps(
            20_000, torch.Generator().manual_seed(0)
        )
        for how in ("uniform", "logit_normal")
    }
    for t in draws.values():
        assert t.dtype == (torch.float32 if kind == "flow" else torch.long)
        assert 0 <= float(t.min()) and float(t.max()) < T
    middle = {how: float(((t >= 0.25 * T) & (t < 0.75 * T)).float().mean()) for how, t in draws.items()}
    assert abs(middle["uniform"] - 0.5) < 0.02
    assert abs(middle["logit_normal"] - 0.728) < 0.02  # P(|N(0, 1)| < ln 3)
    with pytest.raises(ConfigError, match="timestep_sampling"):
        NoiseSchedule(timestep_sampling="beta")


def test_bad_names_and_values_are_refused():
    with pytest.raises(ConfigError, match="unknown sampler 'heun'; choose one of ddim"):
        DiffusionSampler("heun")
    with pytest.raises(
        ConfigError,
        match="does not run prediction_type 'flow'; samplers that do: dpmpp, dpmpp1, flow_euler, unipc",
    ):
        DiffusionSampler("ddim", NoiseSchedule(prediction_type="flow"))
    with pytest.raises(ConfigError, match="prediction_type must be one of"):
        NoiseSchedule(prediction_type="sample")
    with pytest.raises(ConfigError, match="strength must be in"):
        DiffusionSampler("ddim").set_steps(10, strength=1.5)


def test_schedule_values_at_their_limits_are_refused_with_their_names():
    NoiseSchedule(num_train_timesteps=2)  # the smallest schedule
    for bad in (1, True, 2.5):
        with pytest.raises(ConfigError, match=rf"num_train_timesteps must be an integer >= 2, got {bad!r}"):
            NoiseSchedule(num_train_timesteps=bad)
    for start, end in ((0.0, 0.02), (0.02, 0.02), (1e-4, 1.0)):
        with pytest.raises(
            ConfigError, match=rf"need 0 < beta_start < beta_end < 1, got beta_start={start}, beta_end={end}"
        ):
            NoiseSchedule(beta_start=start, beta_end=end)
    for shift in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=rf"shift must be a positive number, got {shift!r}"):
            NoiseSchedule(prediction_type="flow", shift=shift)
    with pytest.raises(
        ConfigError, match="prediction_type must be one of epsilon, v_prediction, flow; got 'x'"
    ):
        NoiseSchedule(prediction_type="x")
    with pytest.raises(
        ConfigError,
        match="beta_schedule must be one of linear, scaled_linear, squaredcos_cap_v2; got 'cosine'",
    ):
        NoiseSchedule(beta_schedule="cosine")
    with pytest.raises(
        ConfigError, match="timestep_sampling must be one of uniform, logit_normal; got 'beta'"
    ):
        NoiseSchedule(timestep_sampling="beta")


@pytest.mark.parametrize("how", ["uniform", "logit_normal"])
def test_flow_timesteps_follow_the_shift_formula_from_the_generators_draws(how):
    T, shift = 1000, 3.0
    t = NoiseSchedule(prediction_type="flow", shift=shift, timestep_sampling=how).sample_timesteps(
        64, torch.Generator().manual_seed(4)
    )
    g = torch.Generator().manual_seed(4)
    u = (
        torch.rand(64, generator=g, dtype=torch.float64)
        if how == "uniform"
        else torch.sigmoid(torch.randn(64, generator=g, dtype=torch.float64))
    )
    assert torch.allclose(t.double(), T * shift * u / (1 + (shift - 1) * u), atol=1e-3)
    assert t.dtype == torch.float32


@pytest.mark.parametrize("how", ["uniform", "logit_normal"])
def test_vp_timesteps_cover_every_integer_and_replay_from_the_generator(how):
    schedule = NoiseSchedule(num_train_timesteps=4, timestep_sampling=how)
    t = schedule.sample_timesteps(4000, torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and set(t.tolist()) == {0, 1, 2, 3}
    assert torch.equal(t, schedule.sample_timesteps(4000, torch.Generator().manual_seed(0)))
    if how == "logit_normal":  # floor(u * T) of the generator's own draws
        u = torch.sigmoid(torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
        assert torch.equal(t, (u * 4).long())


@pytest.mark.parametrize("name", ["ddim", "euler", "dpmpp"])
def test_add_noise_and_init_noise_by_their_definitions(name):
    sampler = DiffusionSampler(name)
    x0, noise = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    alpha, sigma = (float(v) for v in sampler.schedule.alpha_sigma(torch.tensor(600)))
    want = x0 + sigma / alpha * noise if name == "euler" else alpha * x0 + sigma * noise
    torch.testing.assert_close(sampler.add_noise(x0, noise, 600), want)
    start = sampler.init_noise((2, 3), torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.randn((2, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert start.dtype == torch.float64
    torch.testing.assert_close(start, expected * float(getattr(sampler.scheduler, "init_noise_sigma", 1.0)))
    x_t, t, target = NoiseSchedule().training_pair(x0, torch.Generator().manual_seed(2))
    assert x_t.dtype == target.dtype == torch.float64
    for schedule in (NoiseSchedule(), NoiseSchedule(prediction_type="flow")):  # float64 whatever t comes as
        for t in (torch.tensor([3, 500]), torch.tensor([0.1, 0.7], dtype=torch.float32), 250):
            assert all(v.dtype == torch.float64 for v in schedule.alpha_sigma(t))
    flow_alpha, flow_sigma = NoiseSchedule(prediction_type="flow").alpha_sigma(
        torch.tensor([1], dtype=torch.int32)
    )
    assert float(flow_sigma) == 1 / 1000 and float(flow_alpha) == 1 - 1 / 1000
