import json

import pytest
import torch

from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.errors import WeightsError

TINY = UNetConfig(base=8, mults=(1, 2), blocks=1, attention=True, head_dim=8, groups=4, level_dim=16)


def inputs(n=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g), torch.rand(n, 3, h, w, generator=g) * 2 - 1


def test_untrained_network_predicts_zero_with_the_input_shape():
    z, c = inputs()
    out = ConditionalUNet(TINY)(z, c, torch.tensor([0.3, -2.0]))
    assert out.shape == z.shape
    assert torch.count_nonzero(out) == 0


def test_config_round_trips_through_json():
    config = UNetConfig(base=16, mults=(1, 2, 4), blocks=3, attention=True)
    assert UNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.size_multiple == 8


def test_unknown_config_keys_are_a_weights_error():
    with pytest.raises(WeightsError, match="unknown UNet config keys"):
        UNetConfig.from_dict({**TINY.to_dict(), "depth": 3})


def test_sizes_that_are_not_a_multiple_are_refused():
    z, c = inputs(h=26, w=40)
    with pytest.raises(ValueError, match="multiple of 4"):
        ConditionalUNet(TINY)(z, c, torch.zeros(2))


def test_one_training_step_makes_the_output_depend_on_level_and_condition():
    torch.manual_seed(0)
    net = ConditionalUNet(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    z, c = inputs(h=16, w=24)
    for _ in range(2):
        opt.zero_grad()
        torch.mean((net(z, c, torch.tensor([1.0, 5.0])) - z) ** 2).backward()
        opt.step()
    assert all(p.grad is not None for p in net.parameters())
    base = net(z, c, torch.tensor([1.0, 1.0]))
    assert not torch.allclose(base, net(z, c, torch.tensor([9.0, 9.0])), atol=1e-5)
    assert not torch.allclose(base, net(z, -c, torch.tensor([1.0, 1.0])), atol=1e-5)


def test_bf16_autocast_channels_last_matches_fp32():
    torch.manual_seed(1)
    net = ConditionalUNet(TINY)
    for p in net.parameters():  # a non-trivial function of every layer
        torch.nn.init.normal_(p, std=0.1)
    z, c = inputs()
    level = torch.tensor([14.0, -7.5])
    reference = net(z, c, level)
    net = net.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = net(z.contiguous(memory_format=torch.channels_last),
                   c.contiguous(memory_format=torch.channels_last), level).float()
    assert torch.allclose(fast, reference, atol=0.05 * reference.abs().max().item())


def test_rate_conditioning_starts_as_the_network_it_extends_then_depends_on_the_rate():
    torch.manual_seed(2)
    net = ConditionalUNet(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    conditioned = net.with_rate_conditioning()
    assert conditioned.config == UNetConfig(**{**TINY.to_dict(), "mults": TINY.mults, "rate_conditioning": True})
    z, c = inputs()
    level = torch.tensor([0.3, -2.0])
    before = net(z, c, level)
    assert torch.equal(conditioned(z, c, level, torch.tensor([0.1, 0.9])), before)
    with pytest.raises(ValueError, match="rate-conditioned"):
        conditioned(z, c, level)
    with pytest.raises(ValueError, match="already rate-conditioned"):
        conditioned.with_rate_conditioning()
    torch.nn.init.normal_(conditioned.rate_embedding.mlp[-1].weight, std=0.5)  # as training would move it
    low, high = conditioned(z, c, level, 0.2), conditioned(z, c, level, 0.8)
    assert not torch.allclose(low, high, atol=1e-4)
    assert torch.equal(low, conditioned(z, c, level, torch.tensor([0.2, 0.2])))  # a number serves the batch
    assert torch.equal(net(z, c, level, 0.5), before)  # a network without it ignores the rate


def test_configs_from_before_rate_conditioning_load_without_it():
    old = {k: v for k, v in TINY.to_dict().items() if k != "rate_conditioning"}
    assert UNetConfig.from_dict(old).rate_conditioning is False
    assert ConditionalUNet(UNetConfig.from_dict(old)).rate_embedding is None
