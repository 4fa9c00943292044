import dataclasses

import numpy as np
import pytest
import torch

from engine.decoders.flow import FLOW_SHIFT_RANGE, StartNoise
from engine.decoders.schedules import ShiftRange
from engine.decoders.score_decoder import (
    ScoreDecoder,
    TrainedFacts,
    sampling_shift_range,
)
from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.errors import Cancelled, ImageError, SettingsError, WeightsError
from engine.progress import CancelToken
from engine.weights import save_weights

CONFIG = UNetConfig(base=8, mults=(1, 2), blocks=1, head_dim=8, groups=4, level_dim=16)
FACTS = TrainedFacts(ShiftRange(0.0, 2.0), flow_sigma=StartNoise.constant(0.3), train_steps=123, crop=64)


def decoder(kind, seed=0):
    torch.manual_seed(seed)
    net = ConditionalUNet(CONFIG)
    for p in net.parameters():
        if p.ndim > 1 and torch.count_nonzero(p) == 0:  # an untrained net predicts 0; make it compute
            torch.nn.init.normal_(p, std=0.05)
    return ScoreDecoder(net, kind, FACTS)


def x_ae(h=24, w=40):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("kind,solver", [("diffusion", "euler"), ("flow", "euler"), ("flow", "heun")])
def test_refine_is_a_seeded_image_in_unit_range(kind, solver):
    dec, image = decoder(kind), x_ae()
    out = dec.refine(image, steps=2, shift=1.0, noise=0.5, seed=1, solver=solver)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, dec.refine(image, steps=2, shift=1.0, noise=0.5, seed=1, solver=solver))
    assert not torch.equal(out, dec.refine(image, steps=2, shift=1.0, noise=0.5, seed=2, solver=solver))


def test_realism_blends_between_the_autoencoder_and_the_refined_image():
    dec, image = decoder("flow"), x_ae()
    full = dec.refine(image, steps=2, seed=3, realism=1.0)
    assert torch.equal(dec.refine(image, steps=2, seed=3, realism=0.0), image)
    half = dec.refine(image, steps=2, seed=3, realism=0.5)
    assert torch.allclose(half, (0.5 * full + 0.5 * image).clamp(0, 1), atol=1e-6)


def test_realism_blends_toward_a_given_base_in_the_output_and_every_step():
    dec, image = decoder("flow"), x_ae()
    base = torch.rand_like(image)
    full = dec.refine(image, steps=2, seed=3, realism=1.0)
    steps = []
    half = dec.refine(image, steps=2, seed=3, realism=0.5, base=base, on_step=steps.append)
    assert torch.allclose(half, (0.5 * full + 0.5 * base).clamp(0, 1), atol=1e-6)
    np.testing.assert_array_equal(steps[-1].estimate, (half[0].permute(1, 2, 0) * 255).round().byte().numpy())
    with pytest.raises(ImageError, match="base must have x_ae's shape"):
        dec.refine(image, steps=2, realism=0.5, base=base[..., :-1])


def test_progress_reports_each_step_as_a_uint8_image():
    dec, image = decoder("diffusion"), x_ae()
    infos = []
    out = dec.refine(image, steps=4, on_step=infos.append)
    assert [(i.index, i.total) for i in infos] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(i.estimate.dtype == np.uint8 and i.estimate.shape == (24, 40, 3) for i in infos)
    assert all(a.elapsed_s <= b.elapsed_s for a, b in zip(infos, infos[1:]))
    final = (out[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(infos[-1].estimate, final)


def test_cancel_from_the_progress_callback_stops_after_that_step():
    dec, token, seen = decoder("flow"), CancelToken(), []

    def on_step(info):
        seen.append(info.index)
        if info.index == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        dec.refine(x_ae(), steps=6, on_step=on_step, cancel=token)
    assert seen == [1, 2]


@pytest.mark.parametrize("settings,message", [
    ({"steps": 0}, r"steps must be an integer in \[1, 1000\], got 0"),
    ({"steps": 1001}, r"steps must be an integer in \[1, 1000\], got 1001"),
    ({"steps": 2.5}, r"steps must be an integer"),
    ({"noise": 1.5}, r"noise must be in \[0, 1\], got 1.5"),
    ({"realism": -0.1}, r"realism must be in \[0, 1\], got -0.1"),
    ({"shift": 2.5}, r"schedule shift 2.5 is outside the trained range \[0, 2\]"),
    ({"solver": "rk4"}, r"unknown flow solver 'rk4'"),
    ({"seed": -1}, r"seed must be a non-negative integer"),
])
def test_settings_outside_their_range_are_named(settings, message):
    with pytest.raises(SettingsError, match=message):
        decoder("diffusion").refine(x_ae(), **settings)


def test_flow_reads_the_shift_within_its_own_range_and_images_must_be_one_rgb_tensor():
    flow, image = decoder("flow"), x_ae()
    assert sampling_shift_range("flow", flow.facts) == FLOW_SHIFT_RANGE
    uniform = flow.refine(image, steps=3, seed=1)
    assert torch.equal(uniform, flow.refine(image, steps=3, seed=1, shift=0.0))
    assert not torch.equal(uniform, flow.refine(image, steps=3, seed=1, shift=2.5))  # beyond the diffusion's [0, 2]
    with pytest.raises(SettingsError, match=r"schedule shift -3.5 is outside the flow's range \[-3, 3\]"):
        flow.refine(image, steps=3, shift=-3.5)
    with pytest.raises(ImageError, match=r"expected a 1×3×H×W image tensor, got shape \(3, 24, 40\)"):
        decoder("flow").refine(x_ae()[0])


def test_save_and_load_round_trip(tmp_path):
    dec, image = decoder("diffusion"), x_ae()
    dec.save(tmp_path / "d.safetensors")
    first = ScoreDecoder.load(tmp_path / "d.safetensors")
    second = ScoreDecoder.load(tmp_path / "d.safetensors")
    assert first.kind == "diffusion" and first.facts == FACTS and first.net.config == CONFIG
    out = first.refine(image, steps=3, seed=4)
    assert torch.equal(out, second.refine(image, steps=3, seed=4))
    assert torch.allclose(out, dec.refine(image, steps=3, seed=4), atol=0.02)  # weights stored in bf16


def test_facts_round_trip_and_older_files_mean_no_prior():
    facts = TrainedFacts(ShiftRange(0.5, 2.5), StartNoise.constant(0.2), 10, 128, residual_sigma=0.07)
    assert TrainedFacts.from_dict(facts.to_dict()) == facts
    assert facts.to_dict()["flow_sigma"] == 0.2  # one σ stays a number, as files before the rate-dependent one
    falling = dataclasses.replace(facts, flow_sigma=StartNoise(0.25, 0.04))
    assert TrainedFacts.from_dict(falling.to_dict()) == falling
    older = {k: v for k, v in facts.to_dict().items() if k not in ("residual_sigma", "condition")}
    assert TrainedFacts.from_dict(older).residual_sigma == 0.0
    assert TrainedFacts.from_dict(older).condition == "decoded"  # files before the choice refine g_s's output
    on_filtered = dataclasses.replace(facts, condition="post_filtered")
    assert TrainedFacts.from_dict(on_filtered.to_dict()) == on_filtered and on_filtered.on_post_filtered
    with pytest.raises(WeightsError, match="unknown decoder condition 'sharpened'"):
        TrainedFacts.from_dict({**facts.to_dict(), "condition": "sharpened"})
    for bad in ({"shift_range": [3, 1]}, {"flow_sigma": 0}, {"flow_sigma": [0.1]}):
        with pytest.raises(WeightsError, match="unreadable decoder facts"):
            TrainedFacts.from_dict(bad)


def test_loading_other_weights_is_a_weights_error(tmp_path):
    save_weights(tmp_path / "ae.safetensors", torch.nn.Linear(2, 2), "autoencoder", {})
    with pytest.raises(WeightsError, match="holds a 'autoencoder' model, not a score-based decoder"):
        ScoreDecoder.load(tmp_path / "ae.safetensors")
    with pytest.raises(WeightsError, match="unknown decoder kind 'gan'"):
        ScoreDecoder(ConditionalUNet(CONFIG), "gan")


def test_refine_leaves_the_network_trainable():
    dec = decoder("diffusion")
    dec.refine(x_ae(), steps=1)
    z = x_ae()
    dec.net(z, z, torch.zeros(1)).square().mean().backward()
    assert dec.net.head.weight.grad is not None


@pytest.mark.slow
def test_a_4000_by_3000_image_decodes_in_bounded_memory():
    resource = pytest.importorskip("resource")
    dec = ScoreDecoder(ConditionalUNet(), "flow")
    image = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = dec.refine_image(image, steps=1, on_step=lambda info: None)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert out.shape == image.shape and out.dtype == np.uint8
    assert grown < 2 ** 20, f"peak memory grew by {grown / 2 ** 20:.1f} GiB"  # a few tiles' work, not the image's


def test_a_rate_conditioned_decoder_needs_the_rate_and_keeps_it_through_a_file(tmp_path):
    dec = decoder("diffusion")
    dec = ScoreDecoder(dec.net.with_rate_conditioning(), "diffusion", FACTS)
    torch.nn.init.normal_(dec.net.rate_embedding.mlp[-1].weight, std=0.5)
    image = x_ae()
    assert dec.needs_rate and not decoder("diffusion").needs_rate
    for rate in (None, 1.5):
        with pytest.raises(SettingsError, match="depends on the rate: it needs the rate"):
            dec.refine(image, steps=2, rate=rate)
    low = dec.refine(image, steps=2, rate=0.1)
    assert not torch.allclose(low, dec.refine(image, steps=2, rate=0.9), atol=1e-3)
    dec.save(tmp_path / "d.safetensors")
    loaded = ScoreDecoder.load(tmp_path / "d.safetensors")
    assert loaded.needs_rate
    assert torch.allclose(loaded.refine(image, steps=2, rate=0.1), low, atol=0.02)  # weights stored in bf16


def test_a_flow_whose_start_noise_falls_with_the_rate_starts_at_that_rates_sigma():
    net = ConditionalUNet(CONFIG)  # untrained: predicts a zero velocity, so the decode is x_ae + σ·ε
    falling = dataclasses.replace(FACTS, flow_sigma=StartNoise(0.2, 0.05), residual_sigma=0.0)
    dec, grey = ScoreDecoder(net, "flow", falling), torch.full((1, 3, 64, 64), 0.5)
    assert dec.needs_rate and not ScoreDecoder(net, "flow", FACTS).needs_rate
    with pytest.raises(SettingsError, match="depends on the rate"):
        dec.refine(grey, steps=1)
    for rate, sigma in ((0.0, 0.2), (0.5, 0.1), (1.0, 0.05)):
        spread = float((2 * dec.refine(grey, steps=1, noise=1.0, rate=rate) - 1).std())  # in [-1, 1], as σ
        assert spread == pytest.approx(sigma, rel=0.05)


def test_a_decoder_without_rate_conditioning_ignores_the_rate():
    dec = decoder("flow")
    assert torch.equal(dec.refine(x_ae(), steps=2, rate=0.7), dec.refine(x_ae(), steps=2))


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_a_decoder_trained_on_the_post_filtered_decode_is_conditioned_on_the_base(kind):
    dec, image = decoder(kind), x_ae()
    base = torch.rand_like(image)
    on_filtered = ScoreDecoder(dec.net, kind, dataclasses.replace(FACTS, condition="post_filtered"))
    # it refines `base` as a decoder on g_s's output refines x_ae; x_ae gives only the shape
    torch.testing.assert_close(on_filtered.refine(image, steps=2, seed=5, base=base),
                               dec.refine(base, steps=2, seed=5))
    torch.testing.assert_close(on_filtered.refine(image, steps=2, seed=5, realism=0.5, base=base),
                               dec.refine(base, steps=2, seed=5, realism=0.5))
    with pytest.raises(SettingsError, match="refines the post-filtered autoencoder decode: pass it as base"):
        on_filtered.refine(image, steps=2)
