"""The realism objective on tiny models: what trains, what it sees, and what each estimate means."""
from __future__ import annotations

import json

import pytest
import torch

from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.decoders.diffusion import diffusion_estimate, sample_diffusion
from engine.decoders.flow import flow_estimate, sample_flow
from engine.decoders.schedules import ShiftRange
from engine.decoders.score_decoder import ScoreDecoder, TrainedFacts
from engine.decoders.unet import ConditionalUNet
from engine.errors import SettingsError
from engine.evaluation.metrics import st_lpips_network
from engine.testing import TINY_AUTOENCODER, TINY_UNET, write_tiny_weights
from engine.training.decoders import train_decoder
from engine.training.discriminator import PatchDiscriminator, augment_pairs
from engine.training.realism_objective import RealismConfig, RealismObjective
from tests.support import single_thread, tiny_photos, tiny_train_config  # noqa: F401 (fixture)


def tiny_objective(kind: str = "flow", **config) -> tuple[RealismObjective, ConditionalUNet]:
    torch.manual_seed(0)
    ae = HyperpriorAutoencoder(TINY_AUTOENCODER).eval().requires_grad_(False)
    net = ConditionalUNet(TINY_UNET).with_rate_conditioning()
    with torch.no_grad():  # a head that is not zero, so the network's output depends on its input
        torch.nn.init.normal_(net.head.weight, std=0.02)
    objective = RealismObjective(kind, ae, TrainedFacts(), RealismConfig(discriminator_width=8, **config),
                                 perceptual=st_lpips_network())
    return objective, net


def batch(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_generator_loss_goes_down_on_a_fixed_batch():
    objective, net = tiny_objective(adversarial_warmup=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, losses = batch(), []
    for _ in range(30):
        terms, *_ = objective.generator_terms(net, x, torch.Generator().manual_seed(3))  # the same noise each time
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses


def test_the_discriminator_judges_an_image_together_with_its_autoencoder_decode():
    disc = PatchDiscriminator(width=8)
    image, cond = batch(seed=1) * 2 - 1, batch(seed=2) * 2 - 1
    logits = disc(image, cond)
    assert logits.shape == (2, 1, 8, 8)  # one logit per patch, 1/8 of the side
    assert not torch.allclose(logits, disc(image, -cond))  # the same image under another x_ae is judged apart


def test_pairs_are_turned_alike_and_every_symmetry_is_drawn():
    image = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 3, 1, 1)
    turned, cond = augment_pairs(image, image.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(turned, cond)
    assert len({tuple(t[0].flatten().tolist()) for t in turned}) == 8


def test_the_generator_step_trains_only_the_decoder_and_the_discriminator_step_only_the_discriminator():
    objective, net = tiny_objective()
    loss, metrics = objective(net, batch())
    assert {"g_adversarial", "g_perceptual", "g_low_frequency", "g_distortion"} <= metrics.keys()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    frozen = [*objective.discriminator.parameters(), *objective.ae.parameters(), *objective.perceptual.parameters()]
    assert all(p.grad is None for p in frozen)

    net_grads = [p.grad.clone() for p in net.parameters()]
    before = [p.detach().clone() for p in objective.discriminator.parameters()]
    d_metrics = objective.after_step()
    assert {"d_loss", "d_real", "d_fake"} <= d_metrics.keys() and objective.steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.discriminator.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(net_grads, net.parameters()))  # D's loss sent nothing back
    assert objective.after_step() == {}  # one update per generator batch


def test_the_adversarial_weight_ramps_up_while_the_discriminator_learns():
    objective, _ = tiny_objective(adversarial=0.2, adversarial_warmup=4)
    assert objective.adversarial_weight() == 0.0
    objective.steps = 2
    assert objective.adversarial_weight() == pytest.approx(0.1)
    objective.steps = 10
    assert objective.adversarial_weight() == pytest.approx(0.2)


def test_bad_objective_settings_are_refused():
    with pytest.raises(SettingsError, match="first_step_share"):
        RealismConfig(first_step_share=1.5)
    with pytest.raises(SettingsError, match="rate_range"):
        RealismConfig(rate_range=(0.8, 0.2))
    with pytest.raises(SettingsError, match="unknown realism objective settings"):
        RealismConfig.from_dict({"adversarial": 0.1, "gan_weight": 1})
    assert RealismConfig.from_dict(RealismConfig(rate_range=(0.1, 0.5)).to_dict()) == RealismConfig(rate_range=(0.1, 0.5))


def _network(net: ConditionalUNet, rate: float):
    return lambda z, cond, level: net(z, cond, level, rate=rate)


def test_the_flow_estimate_at_t_0_is_the_one_step_euler_decode():
    _, net = tiny_objective()
    x, x_ae = batch(seed=1), batch(seed=2)
    estimate = flow_estimate(_network(net, 0.5), x, x_ae, 0.25, torch.Generator().manual_seed(7), first_step_share=1.0)
    generator = torch.Generator().manual_seed(7)
    torch.rand(3, 2, generator=generator)  # what the estimate drew before its start noise
    decoded = sample_flow(_network(net, 0.5), x_ae, 1, 0.25, generator=generator)
    torch.testing.assert_close(((estimate.detach() + 1) / 2).clamp(0, 1), decoded, atol=1e-6, rtol=0)


def test_the_diffusion_estimate_at_t_1_is_the_one_step_decode():
    _, net = tiny_objective()
    x, x_ae = batch(seed=1), batch(seed=2)
    shifts = ShiftRange(0.0, 0.0)
    estimate = diffusion_estimate(_network(net, 0.5), x, x_ae, shifts, torch.Generator().manual_seed(7),
                                  first_step_share=1.0)
    generator = torch.Generator().manual_seed(7)
    torch.rand(3, 2, generator=generator)
    torch.rand(2, generator=generator)  # the shifts
    decoded = sample_diffusion(_network(net, 0.5), x_ae, 1, 0.0, 0.0, generator=generator)
    # the sampler starts from α₁·x_ae + σ₁·ε, training from α₁·x + σ₁·ε: α₁ ≈ 5.5e-4 apart
    torch.testing.assert_close(((estimate.detach() + 1) / 2).clamp(0, 1), decoded, atol=2e-3, rtol=0)


@pytest.mark.parametrize("kind", ["flow", "diffusion"])
def test_rollout_points_are_made_from_the_networks_own_first_step_not_from_the_original(kind):
    _, net = tiny_objective()
    x_ae = batch(seed=2)

    def estimate(x: torch.Tensor, rollout: float) -> torch.Tensor:
        generator = torch.Generator().manual_seed(5)
        if kind == "flow":
            return flow_estimate(_network(net, 0.5), x, x_ae, 0.25, generator, 0.0, rollout_share=rollout)
        return diffusion_estimate(_network(net, 0.5), x, x_ae, ShiftRange(), generator, 0.0, rollout_share=rollout)

    with torch.no_grad():
        # later steps of the real sampler never see the original: neither does a rollout point
        torch.testing.assert_close(estimate(batch(seed=1), 1.0), estimate(batch(seed=3), 1.0))
        assert not torch.allclose(estimate(batch(seed=1), 0.0), estimate(batch(seed=3), 0.0))


@pytest.mark.slow
def test_a_realism_run_exports_a_realism_decoder_logs_its_held_out_signal_and_resumes(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    realism = RealismConfig(discriminator_width=8, adversarial_warmup=2, crop_min_scale=0.75)
    out = tmp_path / "run"
    path = train_decoder("flow", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(2),
                         tiny_train_config(out, 2), init=weights / "flow.safetensors", realism=realism)
    decoder = ScoreDecoder.load(path)
    assert decoder.kind == "flow" and decoder.facts.objective == "realism" and decoder.facts.train_steps == 2
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert "d_loss" in log[0] and "g_adversarial" in log[0]
    validation = [entry["validation"] for entry in log if "validation" in entry][-1]
    assert {"1step_psnr", "4step_top_octave", "4step_noise1_st_lpips", "ae_top_octave", "d_real_val"} <= validation.keys()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["auxiliary"]["steps"] == 2

    train_decoder("flow", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(2),
                  tiny_train_config(out, 4), init=weights / "flow.safetensors", realism=realism)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["auxiliary"]["steps"] == 4
    with pytest.raises(SettingsError, match="other decoder settings"):
        train_decoder("flow", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(2),
                      tiny_train_config(out, 6), init=weights / "flow.safetensors",
                      realism=RealismConfig(discriminator_width=8, adversarial=0.3))
