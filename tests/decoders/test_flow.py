import pytest
import torch

from engine.decoders.diffusion import DEFAULT_RESIDUAL_SIGMA
from engine.decoders.flow import (
    FLOW_SHIFT_RANGE,
    flow_loss,
    flow_times,
    prior_velocity,
    sample_flow,
)
from engine.errors import Cancelled, SettingsError
from engine.progress import CancelToken

SHAPE = (1, 3, 8, 12)


def target_and_condition(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(SHAPE, generator=g, dtype=torch.float64)
    return x, (x + 0.1 * torch.randn(SHAPE, generator=g, dtype=torch.float64)).clamp(0, 1)


def straight_line_oracle(x01, residual_sigma=DEFAULT_RESIDUAL_SIGMA, sigma=0.25):
    """The true velocity of a straight path to ``x01``, x_1 − x_0, constant along the path,
    less the prior velocity the sampler adds. It remembers x_0 from its call at t = 0 (the
    velocity (x − z)/(1 − t) is 0/0 at t = 1)."""
    x1, start = 2 * x01 - 1, {}

    def velocity(z, cond, t):
        if t[0].item() == 0.0:
            start["x0"] = z.clone()
        return x1 - start["x0"] - prior_velocity(z, cond, t[0].item(), sigma, residual_sigma)
    return velocity


@pytest.mark.parametrize("residual_sigma", [0.0, 0.1])
@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_oracle_velocity_reaches_the_target(solver, steps, residual_sigma):
    x, x_ae = target_and_condition()
    out = sample_flow(straight_line_oracle(x, residual_sigma), x_ae, steps, 0.25, 0.0, solver,
                      torch.Generator().manual_seed(0), residual_sigma=residual_sigma)
    assert torch.allclose(out, x, atol=1e-12)


@pytest.mark.parametrize("solver,steps", [("euler", 200), ("heun", 20)])
def test_flow_transports_one_gaussian_onto_another(solver, steps):
    # x_0 ~ N(m, σ0²), x_1 ~ N(mu, s²) independent: E[x_1 − x_0 | z_t] is linear in z_t, and
    # integrating it must carry the start distribution onto the target.
    m, sigma0, mu, s = -0.3, 0.25, 0.2, 0.15

    def velocity(z, cond, t):
        t = t[0].item()
        mean_t, var_t = (1 - t) * m + t * mu, (1 - t) ** 2 * sigma0 ** 2 + t ** 2 * s ** 2
        return (mu - m) + (t * s ** 2 - (1 - t) * sigma0 ** 2) / var_t * (z - mean_t)

    x_ae = torch.full((1, 3, 64, 64), (m + 1) / 2, dtype=torch.float64)
    out = 2 * sample_flow(velocity, x_ae, steps, sigma0, 0.0, solver, torch.Generator().manual_seed(1),
                          residual_sigma=0.0) - 1
    assert out.mean().item() == pytest.approx(mu, abs=0.01)
    assert out.std().item() == pytest.approx(s, rel=0.02)


def test_untrained_network_steps_onto_x_ae_then_samples_the_prior():
    zero = lambda z, c, t: torch.zeros_like(z)
    x_ae = torch.full((1, 3, 64, 64), 0.4, dtype=torch.float64)
    one_step = sample_flow(zero, x_ae, 1, 0.25, 0.0, "euler", torch.Generator().manual_seed(0), residual_sigma=0.1)
    assert torch.allclose(one_step, x_ae)  # the prior's velocity at t = 0 points from x_0 to x_ae
    many = 2 * sample_flow(zero, x_ae, 200, 0.25, 0.0, "euler", torch.Generator().manual_seed(0),
                           residual_sigma=0.1) - 1
    assert many.mean().item() == pytest.approx(-0.2, abs=0.01)
    assert many.std().item() == pytest.approx(0.1, rel=0.05)


def endpoint_oracle(x01, residual_sigma=DEFAULT_RESIDUAL_SIGMA, sigma=0.25):
    """The velocity (x_1 − z)/(1 − t) that points every z straight at ``x01`` (Euler never
    evaluates t = 1), less the prior velocity the sampler adds."""
    x1 = 2 * x01 - 1
    return lambda z, cond, t: (x1 - z) / (1 - t[0].item()) - prior_velocity(z, cond, t[0].item(), sigma, residual_sigma)


@pytest.mark.parametrize("renoise", [0.0, 0.3, 1.0])
def test_an_exact_endpoint_lands_on_the_target_whatever_the_sampler_noise(renoise):
    x, x_ae = target_and_condition()
    seen = []
    out = sample_flow(endpoint_oracle(x), x_ae, 4, 0.25, renoise, "euler", torch.Generator().manual_seed(0),
                      on_step=lambda i, n, est: seen.append(est))
    assert torch.allclose(out, x, atol=1e-12)
    assert all(torch.allclose(est, x, atol=1e-12) for est in seen)


def test_sampler_noise_zero_is_the_plain_euler_integration():
    _, x_ae = target_and_condition()
    field = lambda z, c, t: torch.sin(3 * z) * (1 + t[0].item()) - c
    out = sample_flow(field, x_ae, 5, 0.2, 0.0, "euler", torch.Generator().manual_seed(3), residual_sigma=0.0)
    cond = 2 * x_ae - 1
    z = cond + 0.2 * torch.randn(x_ae.shape, generator=torch.Generator().manual_seed(3)).to(x_ae.dtype)
    for t in (0.0, 0.2, 0.4, 0.6, 0.8):
        z = z + 0.2 * field(z, cond, torch.tensor([t]))
    assert torch.allclose(out, ((z + 1) / 2).clamp(0, 1), atol=1e-12)


@pytest.mark.parametrize("shift", [-3.0, -0.5, 0.7, 3.0])
def test_shifted_step_times_add_twice_the_shift_to_each_logsnr(shift):
    times = torch.tensor(flow_times(8, shift), dtype=torch.float64)
    uniform = torch.linspace(0, 1, 9, dtype=torch.float64)
    assert times[0] == 0 and times[-1] == 1 and bool((times.diff() > 0).all())
    logsnr = lambda t: 2 * torch.log(t / (1 - t))
    assert torch.allclose(logsnr(times[1:-1]), logsnr(uniform[1:-1]) + 2 * shift)
    assert flow_times(8, 0.0) == pytest.approx(uniform.tolist())
    # + spends the steps near the clean end: a longer first step, a shorter last one
    first, last = times[1] - times[0], times[-1] - times[-2]
    assert (first > 1 / 8 > last) if shift > 0 else (first < 1 / 8 < last)


def test_the_sampler_steps_at_the_shifted_times():
    _, x_ae = target_and_condition()
    seen = []
    field = lambda z, c, t: seen.append(t[0].item()) or torch.zeros_like(z)
    sample_flow(field, x_ae, 4, 0.2, 0.0, "euler", torch.Generator().manual_seed(3), shift=1.0)
    assert seen == pytest.approx(flow_times(4, 1.0)[:-1])
    assert FLOW_SHIFT_RANGE.bounds == (-3.0, 3.0)
    with pytest.raises(SettingsError, match=r"schedule shift 3.5 is outside the flow's range \[-3, 3\]"):
        FLOW_SHIFT_RANGE.check(3.5)


def test_full_sampler_noise_restarts_each_step_from_fresh_start_noise():
    # with a zero velocity each step's endpoint estimate is z itself, so the next z must be
    # (1 − t')·(x_ae + σ·ξ) + t'·z with ξ the generator's next draw
    _, x_ae = target_and_condition()
    seen = []

    def record(z, cond, t):
        seen.append(z.clone())
        return torch.zeros_like(z)
    sample_flow(record, x_ae, 3, 0.2, 1.0, "euler", torch.Generator().manual_seed(4), residual_sigma=0.0)
    g, cond = torch.Generator().manual_seed(4), 2 * x_ae - 1
    draws = [torch.randn(x_ae.shape, generator=g).to(x_ae.dtype) for _ in range(3)]
    assert torch.allclose(seen[0], cond + 0.2 * draws[0])
    for i, t in ((1, 1 / 3), (2, 2 / 3)):
        assert torch.allclose(seen[i], (1 - t) * (cond + 0.2 * draws[i]) + t * seen[i - 1], atol=1e-6)


def test_sampler_noise_changes_nothing_in_one_step_and_is_checked():
    x, x_ae = target_and_condition()
    field = lambda z, c, t: c - z
    runs = [sample_flow(field, x_ae, 1, 0.25, r, "euler", torch.Generator().manual_seed(0)) for r in (0.0, 1.0)]
    assert torch.equal(runs[0], runs[1])
    for bad in (-0.1, 1.5):
        with pytest.raises(SettingsError, match="flow sampler noise must be in \\[0, 1\\]"):
            sample_flow(field, x_ae, 2, 0.25, bad)


@pytest.mark.parametrize("renoise", [0.0, 0.5])
def test_same_seed_same_sample_and_different_seeds_differ(renoise):
    _, x_ae = target_and_condition()

    def run(seed, solver):
        return sample_flow(lambda z, c, t: c - z, x_ae, 3, 0.25, renoise, solver, torch.Generator().manual_seed(seed))

    for solver in ("euler", "heun"):
        assert torch.equal(run(5, solver), run(5, solver))
        assert not torch.allclose(run(5, solver), run(6, solver))


def test_callback_reports_the_predicted_endpoint_once_per_step():
    x, x_ae = target_and_condition()
    seen = []
    out = sample_flow(straight_line_oracle(x), x_ae, 3, 0.25, 0.0, "heun", torch.Generator().manual_seed(0),
                      on_step=lambda i, n, est: seen.append((i, n, est.clone())))
    assert [(i, n) for i, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(torch.allclose(est, x) for _, _, est in seen)
    assert torch.equal(seen[-1][2], out)


def test_cancel_from_the_callback_stops_before_the_next_step():
    x, x_ae = target_and_condition()
    token, calls = CancelToken(), []

    def on_step(i, n, est):
        calls.append(i)
        if i == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        sample_flow(straight_line_oracle(x), x_ae, 8, on_step=on_step, cancel=token)
    assert calls == [1, 2]


def test_unknown_solver_is_a_settings_error():
    _, x_ae = target_and_condition()
    with pytest.raises(SettingsError, match="unknown flow solver 'rk4'"):
        sample_flow(lambda z, c, t: z, x_ae, 2, solver="rk4")


@pytest.mark.parametrize("residual_sigma", [0.0, 0.1])
def test_loss_is_zero_for_the_true_velocity_and_trains_a_plain_loop(residual_sigma):
    x, x_ae = (a.float().repeat(4, 1, 1, 1) for a in target_and_condition())
    x1 = 2 * x - 1

    def true_velocity(z, cond, t):  # from z_t = (1 − t) x_0 + t x_1: x_1 − x_0 = (x_1 − z_t) / (1 − t)
        t = t.double()[:, None, None, None]
        z, cond = z.double(), cond.double()
        return (x1.double() - z) / (1 - t) - prior_velocity(z, cond, t, 0.25, residual_sigma)
    exact = flow_loss(true_velocity, x, x_ae, 0.25, torch.Generator().manual_seed(0), residual_sigma)
    assert exact.item() < 1e-8

    weight = torch.zeros(1, requires_grad=True)
    loss = flow_loss(lambda z, c, t: weight * z, x, x_ae, 0.25, residual_sigma=residual_sigma)
    assert loss.ndim == 0 and loss.item() > 0.01
    loss.backward()
    assert weight.grad is not None and weight.grad.abs().item() > 0


def test_loss_takes_one_start_noise_per_sample():
    x, x_ae = (a.float().repeat(4, 1, 1, 1) for a in target_and_condition())
    sigmas = torch.tensor([0.05, 0.1, 0.2, 0.4])

    def true_velocity(sigma):
        def velocity(z, cond, t):
            t = t.double()[:, None, None, None]
            z, cond = z.double(), cond.double()
            return (2 * x.double() - 1 - z) / (1 - t) - prior_velocity(z, cond, t, sigma, 0.1)
        return velocity
    per_sample = true_velocity(sigmas.double()[:, None, None, None])
    assert flow_loss(per_sample, x, x_ae, sigmas, torch.Generator().manual_seed(0), 0.1).item() < 1e-8
    # the same field scored as if every sample had started from σ = 0.25: the prior no longer cancels
    assert flow_loss(per_sample, x, x_ae, 0.25, torch.Generator().manual_seed(0), 0.1).item() > 1e-4
