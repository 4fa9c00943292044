"""The diffusion decoder's maths: v-prediction loss and an ancestral sampler with a noise knob.

Variance preserving, z = α x + σ ε, network target v = α ε − σ x, from which
x̂ = α z − σ v and ε̂ = σ z + α v. Images enter and leave in [0, 1]; the process runs in
[-1, 1]. The network sees the logSNR λ itself (shift included), so one trained model
serves every shift and step count whose λ it has seen.

The network predicts the correction to a prior v: the exact v if x were Gaussian around
x_ae with std ``residual_sigma`` (x̂ = the Wiener blend of x_ae and z/α). An untrained
network therefore already denoises as well as x_ae allows, and training only has to
learn what x_ae lacks, which matters when training on a CPU. The prior v is bounded
(→ 0 as σ → 0, → −x_ae as α → 0); ``residual_sigma = 0`` turns it off.

Sampler step t → s (λ_t < λ_s), with γ ∈ [0, 1] the sampler noise:
    c² = γ · σ_s² (1 − e^{λ_t − λ_s})          (γ=1: the DDPM posterior variance)
    z_s = α_s x̂ + sqrt(σ_s² − c²) ε̂ + c ξ     (γ=0: deterministic DDIM)
The last step returns x̂ itself."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from engine.decoders.schedules import ShiftRange, alpha_sigma, logsnr, sample_times
from engine.decoders.unet import NetworkFn
from engine.progress import CancelToken, check_cancel

# on_step(index 1-based, total, current clean estimate x̂ as N×3×H×W in [0, 1])
EstimateCallback = Callable[[int, int, torch.Tensor], None]

# Assumed std of x − x_ae in [-1, 1] for the prior v: about the autoencoder's error at
# low rates (PSNR 24 dB is an RMS error of 0.13 in this range).
DEFAULT_RESIDUAL_SIGMA = 0.1


def prior_v(z: torch.Tensor, cond: torch.Tensor, alpha: torch.Tensor | float, sigma: torch.Tensor | float,
            residual_sigma: float) -> torch.Tensor:
    """v = (α z − x̂)/σ for the posterior mean x̂ of x ~ N(cond, residual_sigma²) given z;
    simplified to σ (α (1 − s²) z − cond) / (α² s² + σ²), which stays finite as σ → 0."""
    if residual_sigma == 0:
        return torch.zeros_like(z)
    s2 = residual_sigma ** 2
    return sigma * (alpha * (1 - s2) * z - cond) / (alpha ** 2 * s2 + sigma ** 2)


def _training_point(x: torch.Tensor, x_ae: torch.Tensor, t: torch.Tensor, shift: torch.Tensor,
                    generator: Optional[torch.Generator]) -> tuple[torch.Tensor, ...]:
    """(z, condition, clean, ε, α, σ, λ) at times ``t`` and shifts ``shift`` (both N) for originals
    and decodes in [0, 1]; α and σ are shaped N×1×1×1."""
    gen_device = generator.device if generator is not None else x.device
    lam = logsnr(t, shift)
    alpha, sigma = (a[:, None, None, None] for a in alpha_sigma(lam))
    clean, cond = 2 * x - 1, 2 * x_ae - 1
    eps = torch.randn(x.shape, generator=generator, device=gen_device).to(x.device)
    return alpha * clean + sigma * eps, cond, clean, eps, alpha, sigma, lam


def diffusion_loss(net: NetworkFn, x: torch.Tensor, x_ae: torch.Tensor, shift_range: ShiftRange,
                   generator: Optional[torch.Generator] = None,
                   residual_sigma: float = DEFAULT_RESIDUAL_SIGMA) -> torch.Tensor:
    """Mean squared error on v for a batch of (original, autoencoder) pairs in [0, 1].

    t ~ U(0, 1) (stratified over the batch, which lowers the loss variance at no cost)
    and a shift ~ U(shift_range) per sample. Plain MSE on v weights the x-error by
    1 + SNR, the usual v-prediction weighting, which keeps low-noise levels (fine
    detail, this decoder's job) strongly weighted without exploding as σ → 0."""
    n, device = x.shape[0], x.device
    t = sample_times(n, generator, device)
    z, cond, clean, eps, alpha, sigma, lam = _training_point(x, x_ae, t, shift_range.sample(n, generator, device),
                                                             generator)
    v = prior_v(z, cond, alpha, sigma, residual_sigma) + net(z, cond, lam).float()
    return torch.mean((v - (alpha * eps - sigma * clean)) ** 2)


def diffusion_estimate(net: NetworkFn, x: torch.Tensor, x_ae: torch.Tensor, shift_range: ShiftRange,
                       generator: Optional[torch.Generator] = None, first_step_share: float = 0.5,
                       residual_sigma: float = DEFAULT_RESIDUAL_SIGMA, rollout_share: float = 0.0) -> torch.Tensor:
    """The clean estimate x̂ = α z − σ v that a sampler step reports from a training point, in
    [-1, 1], with gradients: what the realism objective judges (engine/training/realism_objective.py).

    A share ``first_step_share`` of the batch sits at t = 1, where every sampler starts from
    (nearly) pure noise and where the 1-step decode ends; the rest at t ~ U(0, 1), where later
    steps land; shifts ~ U(shift_range). Training each such estimate to look real is what keeps
    more steps from making the decode worse: every step's x̂ is a whole decode.

    A share ``rollout_share`` of the later points is built as the sampler builds them: from the
    network's own first-step decode x̂₁ (no gradient through it), z_t = α_t x̂₁ + σ_t ε, with ε the
    noise it came from (DDIM, sampler noise 0) or a fresh draw (sampler noise 1), half each."""
    n, device = x.shape[0], x.device
    gen_device = generator.device if generator is not None else device
    u = torch.rand(3, n, generator=generator, device=gen_device).to(device)
    t = torch.where(u[0] < first_step_share, torch.ones_like(u[1]), u[1])
    shift = shift_range.sample(n, generator, device)
    z, cond, clean, eps, alpha, sigma, lam = _training_point(x, x_ae, t, shift, generator)

    def estimate(z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        v = prior_v(z, cond, alpha, sigma, residual_sigma) + net(z, cond, lam).float()
        return alpha * z - sigma * v

    rollout = ((u[2] < rollout_share) & (t < 1))[:, None, None, None]
    if rollout.any():  # the whole batch, so a rate-conditioned net keeps its per-sample rates
        lam_1 = logsnr(torch.ones_like(t), shift)
        alpha_1, sigma_1 = (a[:, None, None, None] for a in alpha_sigma(lam_1))
        with torch.no_grad():
            first = estimate(alpha_1 * cond + sigma_1 * eps, alpha_1, sigma_1, lam_1)  # where the sampler starts
        fresh = torch.randn(x.shape, generator=generator, device=gen_device).to(device)
        coin = torch.rand(n, generator=generator, device=gen_device).to(device)[:, None, None, None] < 0.5
        z = torch.where(rollout, alpha * first + sigma * torch.where(coin, eps, fresh), z)
    return estimate(z, alpha, sigma, lam)


@torch.no_grad()
def sample_diffusion(denoise: NetworkFn, x_ae: torch.Tensor, steps: int, shift: float, noise: float,
                     generator: Optional[torch.Generator] = None,
                     on_step: Optional[EstimateCallback] = None,
                     cancel: Optional[CancelToken] = None,
                     residual_sigma: float = DEFAULT_RESIDUAL_SIGMA) -> torch.Tensor:
    """Sample x ~ p(x | x_ae) in ``steps`` network calls; returns N×3×H×W in [0, 1].

    ``denoise(z, cond, logsnr)`` predicts v minus the prior v (see prior_v); it sees z and
    the condition in [-1, 1]. ``residual_sigma`` must be what the network was trained with.
    Starts at t=1 of the shifted schedule from α₁·x_ae + σ₁·ε: the true marginal there is
    α₁x + σ₁ε, and x_ae is the best x available (α₁ is tiny, so this is nearly pure
    noise). Noise is drawn from ``generator`` on its own device, so a CPU generator gives
    the same result on any device. The estimate x̂ is clipped to [-1, 1] each step."""
    device = x_ae.device
    gen_device = generator.device if generator is not None else device
    cond = 2 * x_ae - 1
    n = x_ae.shape[0]

    def randn() -> torch.Tensor:
        return torch.randn(x_ae.shape, generator=generator, device=gen_device).to(device)

    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    lams = logsnr(times, shift)
    alphas, sigmas = (a.tolist() for a in alpha_sigma(lams))
    z = alphas[0] * cond + sigmas[0] * randn()
    x_hat = cond
    for i in range(steps):
        check_cancel(cancel)
        level = torch.full((n,), float(lams[i]), device=device)
        v = prior_v(z, cond, alphas[i], sigmas[i], residual_sigma) + denoise(z, cond, level).float()
        x_hat = (alphas[i] * z - sigmas[i] * v).clamp(-1.0, 1.0)
        if i + 1 < steps:
            eps_hat = (z - alphas[i] * x_hat) / sigmas[i]
            var = noise * sigmas[i + 1] ** 2 * float(-torch.expm1(lams[i] - lams[i + 1]))
            z = alphas[i + 1] * x_hat + (sigmas[i + 1] ** 2 - var) ** 0.5 * eps_hat
            if var > 0:
                z = z + var ** 0.5 * randn()
        if on_step is not None:
            on_step(i + 1, steps, (x_hat + 1) / 2)
    return (x_hat + 1) / 2
