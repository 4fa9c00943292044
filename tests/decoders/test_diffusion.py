import pytest
import torch

from engine.decoders.diffusion import (
    DEFAULT_RESIDUAL_SIGMA,
    diffusion_loss,
    prior_v,
    sample_diffusion,
)
from engine.decoders.schedules import ShiftRange, alpha_sigma
from engine.errors import Cancelled
from engine.progress import CancelToken

SHAPE = (1, 3, 8, 12)


def target_and_condition(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(SHAPE, generator=g, dtype=torch.float64)
    return x, (x + 0.1 * torch.randn(SHAPE, generator=g, dtype=torch.float64)).clamp(0, 1)


def oracle_for(x01, residual_sigma=DEFAULT_RESIDUAL_SIGMA):
    """The exact v for data that is always ``x01`` (from z = αx + σε, v = αε − σx = (αz − x)/σ),
    less the prior v that the sampler adds, as a trained network would predict it."""
    x = 2 * x01 - 1

    def denoise(z, cond, lam):
        alpha, sigma = (a[:, None, None, None].to(z.dtype) for a in alpha_sigma(lam.double()))
        return (alpha * z - x) / sigma - prior_v(z, cond, alpha, sigma, residual_sigma)
    return denoise


@pytest.mark.parametrize("residual_sigma", [0.0, 0.1])
@pytest.mark.parametrize("steps,shift,noise", [(1, 0.0, 0.0), (3, 1.0, 0.0), (50, 3.0, 0.0), (20, 1.0, 1.0)])
def test_oracle_denoiser_recovers_the_target(steps, shift, noise, residual_sigma):
    x, x_ae = target_and_condition()
    out = sample_diffusion(oracle_for(x, residual_sigma), x_ae, steps, shift, noise,
                           torch.Generator().manual_seed(0), residual_sigma=residual_sigma)
    assert torch.allclose(out, x, atol=1e-9)


def test_prior_v_is_the_gaussian_posterior_and_stays_finite():
    g = torch.Generator().manual_seed(0)
    z, cond = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64).unbind(0)
    s = 0.1
    for lam in [-20.0, -3.0, 0.0, 4.0, 25.0]:
        alpha, sigma = alpha_sigma(torch.tensor(lam, dtype=torch.float64))
        posterior_mean = cond + alpha * s ** 2 / (alpha ** 2 * s ** 2 + sigma ** 2) * (z - alpha * cond)
        v = prior_v(z, cond, alpha, sigma, s)
        # |v| = σ |α(1 − s²) z − cond| / (α² s² + σ²) ≤ (|z| + |cond|) · √(1 + 4s²) / (2s) at every λ
        assert torch.all(v.abs() <= (z.abs() + cond.abs()) * (1 + 4 * s ** 2) ** 0.5 / (2 * s) + 1e-12)
        assert torch.allclose(alpha * z - sigma * v, posterior_mean)
    assert torch.equal(prior_v(z, cond, 0.5, 0.8, 0.0), torch.zeros_like(z))


@pytest.mark.parametrize("noise", [0.0, 0.5, 1.0])
def test_sampler_reproduces_a_gaussian_data_distribution(noise):
    # Data x ~ N(mu, s²) per pixel: the optimal x̂(z) is linear, so the sampled
    # distribution checks the DDIM/ancestral update and its variance, not just fixed points.
    # Finite steps shrink the spread by O(1/steps): 1.2% at 400 steps with γ = 1.
    mu, s = 0.2, 0.15

    def denoise(z, cond, lam):
        alpha, sigma = (a.item() for a in alpha_sigma(lam[:1].double()))
        x_hat = mu + alpha * s ** 2 / (alpha ** 2 * s ** 2 + sigma ** 2) * (z - alpha * mu)
        return (alpha * z - x_hat) / sigma

    x_ae = torch.full((1, 3, 64, 64), (mu + 1) / 2, dtype=torch.float64)
    out = 2 * sample_diffusion(denoise, x_ae, 400, 1.0, noise, torch.Generator().manual_seed(1),
                               residual_sigma=0.0) - 1
    assert out.mean().item() == pytest.approx(mu, abs=0.01)
    assert out.std().item() == pytest.approx(s, rel=0.025)


def test_same_seed_same_sample_and_different_seeds_differ():
    _, x_ae = target_and_condition()

    def damp(z, cond, lam):  # any non-oracle denoiser lets the noise show
        return 0.5 * z + 0.1 * cond

    def run(seed, noise):
        return sample_diffusion(damp, x_ae, 5, 1.0, noise, torch.Generator().manual_seed(seed))

    for noise in (0.0, 0.7):
        assert torch.equal(run(3, noise), run(3, noise))
        assert not torch.allclose(run(3, noise), run(4, noise))


def test_callback_fires_once_per_step_with_the_clean_estimate():
    x, x_ae = target_and_condition()
    seen = []
    sample_diffusion(oracle_for(x), x_ae, 4, 1.0, 0.5, torch.Generator().manual_seed(0),
                     on_step=lambda i, n, est: seen.append((i, n, est.clone())))
    assert [(i, n) for i, n, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(torch.allclose(est, x) for _, _, est in seen)


def test_cancel_from_the_callback_stops_before_the_next_step():
    x, x_ae = target_and_condition()
    token, calls = CancelToken(), []

    def on_step(i, n, est):
        calls.append(i)
        if i == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        sample_diffusion(oracle_for(x), x_ae, 10, 1.0, 0.0, on_step=on_step, cancel=token)
    assert calls == [1, 2]


def test_untrained_network_samples_the_gaussian_prior_around_x_ae():
    # A network that predicts 0 (as an untrained one does) leaves the prior: x ~ N(x_ae, s²).
    x_ae = torch.full((1, 3, 64, 64), 0.4, dtype=torch.float64)
    out = sample_diffusion(lambda z, c, lam: torch.zeros_like(z), x_ae, 200, 1.0, 0.0,
                           torch.Generator().manual_seed(0), residual_sigma=0.1)
    assert (2 * out).mean().item() == pytest.approx(0.8, abs=0.01)
    assert (2 * out).std().item() == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("residual_sigma", [0.0, 0.1])
def test_loss_is_zero_for_the_oracle_and_trains_a_plain_loop(residual_sigma):
    x, x_ae = (a.float() for a in target_and_condition())
    x, x_ae = x.repeat(4, 1, 1, 1), x_ae.repeat(4, 1, 1, 1)
    oracle = oracle_for(x.double(), residual_sigma)
    exact = diffusion_loss(lambda z, c, lam: oracle(z.double(), c.double(), lam).float(), x, x_ae,
                           ShiftRange(0.0, 3.0), torch.Generator().manual_seed(0), residual_sigma)
    assert exact.item() < 1e-8

    weight = torch.zeros(1, requires_grad=True)
    loss = diffusion_loss(lambda z, c, lam: weight * z, x, x_ae, ShiftRange(0.0, 3.0), residual_sigma=residual_sigma)
    assert loss.ndim == 0 and loss.item() > 0.05
    loss.backward()
    assert weight.grad is not None and weight.grad.abs().item() > 0
