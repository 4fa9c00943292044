import copy

import numpy as np
import pytest
import torch

from engine.codec.autoencoder import (
    STRIDE,
    HyperpriorAutoencoder,
    coded_region,
    pad_to_stride,
)
from engine.codec.context_model import anchor_mask
from engine.codec.entropy_models import GaussianConditional
from engine.codec.range_coding import decode_symbols, encode_symbols
from engine.errors import BitstreamError
from engine.testing import TINY_AUTOENCODER
from tests.support import matches


@pytest.fixture(scope="module")
def ae() -> HyperpriorAutoencoder:
    torch.manual_seed(0)
    model = HyperpriorAutoencoder(TINY_AUTOENCODER)
    model.update_tables()
    return model.eval()


def test_forward_shapes_and_likelihoods(ae):
    x = torch.rand(2, 3, 128, 64)
    out = ae(x, torch.tensor([0.0, 1.0]))
    assert out["x_hat"].shape == x.shape
    assert out["y_likelihood"].shape == (2, TINY_AUTOENCODER.m, 8, 4)
    assert out["z_likelihood"].shape == (2, TINY_AUTOENCODER.n, 2, 1)
    for key in ("y_likelihood", "z_likelihood"):
        assert ((out[key] > 0) & (out[key] <= 1)).all()


def test_gains_interpolate_between_levels(ae):
    rows = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]])
    g = ae._interp(rows, torch.tensor([0.0, 0.25, 1.0]))
    np.testing.assert_allclose(g[:, :, 0, 0].log().numpy(), [[0, 0], [0.5, 1.0], [3, 3]], atol=1e-6)


@pytest.mark.parametrize("rate", [0.0, 0.37, 1.0])
def test_real_codec_round_trip_matches_rounded_latents(ae, rate):
    torch.manual_seed(1)
    x = pad_to_stride(torch.rand(1, 3, 70, 100))
    with torch.no_grad():
        y = ae.analyze(x)
        latents = ae.code_latents(y, rate, tuple(x.shape[-2:]))
        y_hat = ae.decode_latents(latents.segments, rate, tuple(x.shape[-2:]), matches(latents.symbols_crc))
        # The decoder must see exactly round(y·gain − μ) + μ, then the inverse gain.
        r = torch.tensor([rate])
        y_g = y * ae._interp(ae.log_gain, r)
        z_sym = torch.round(ae.h_a(y_g) * ae._interp(ae.log_hgain, r))
        means, _ = ae.entropy_params(z_sym, rate)
        expected = (torch.round(y_g - means) + means) * ae._interp(ae.log_inv_gain, r)
    torch.testing.assert_close(y_hat, expected)
    assert x.shape[-1] % STRIDE == 0 and x.shape[-2] % STRIDE == 0


@pytest.mark.parametrize("model", ["ae", "ae_ctx"])
def test_latents_that_see_only_padding_are_not_coded(model, request):
    """A 70×90 image pads to 128×128 (8×8 latents) but only 5×6 latents reach into it: the
    rest cost no bytes and decode to their predicted means; the image's anchors are exactly
    those of a file that codes every latent."""
    model = request.getfixturevalue(model)
    torch.manual_seed(6)
    x = pad_to_stride(torch.rand(1, 3, 70, 90))
    region = coded_region((1, 1, 8, 8), (70, 90))
    assert region.sum() == 5 * 6 and region[..., :5, :6].all()
    with torch.no_grad():
        y = model.analyze(x) * 20  # the untrained transforms' latents all round to 0
        skipping, every = model.code_latents(y, 0.5, (70, 90)), model.code_latents(y, 0.5, (128, 128))
        assert len(b"".join(skipping.segments)) < len(b"".join(every.segments))
        assert skipping.segments[0] == every.segments[0]  # the same ẑ
        y_hat = model.decode_latents(skipping.segments, 0.5, (70, 90), matches(skipping.symbols_crc))
        y_all = model.decode_latents(every.segments, 0.5, (128, 128), matches(every.symbols_crc))
        # Anchors are coded around the hyperprior's means, so inside the image they match
        # exactly; the context model's means also read the padding's anchors.
        anchors = region & anchor_mask(8, 8)
        torch.testing.assert_close(y_hat[anchors.expand_as(y_hat)], y_all[anchors.expand_as(y_hat)], rtol=0, atol=0)
        assert not torch.equal(y_hat[~region.expand_as(y_hat)], y_all[~region.expand_as(y_hat)])
        with pytest.raises(ValueError, match=r"do not belong to a \(200, 90\) image"):
            model.code_latents(y, 0.5, (200, 90))


def test_higher_rate_spends_more_bits_after_a_little_training():
    torch.manual_seed(2)
    model = HyperpriorAutoencoder(TINY_AUTOENCODER)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    x = torch.rand(4, 3, 64, 64) * 0.2 + torch.linspace(0, 0.8, 64)  # smooth ramp + texture
    from engine.training.autoencoder import rd_loss

    for _ in range(60):
        loss, _ = rd_loss(model, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.update_tables()
    model.eval()
    sizes = []
    with torch.no_grad():
        y = model.analyze(x[:1])
        for rate in (0.0, 1.0):
            sizes.append(sum(map(len, model.code_latents(y, rate, tuple(x.shape[-2:])).segments)))
    assert sizes[1] > sizes[0]


def test_checksum_detects_desync(ae):
    x = pad_to_stride(torch.rand(1, 3, 64, 64))
    with torch.no_grad():
        latents = ae.code_latents(ae.analyze(x), 0.5, tuple(x.shape[-2:]))
        with pytest.raises(BitstreamError, match="checksum"):
            ae.decode_latents(latents.segments, 0.5, (64, 64), matches(latents.symbols_crc ^ 1))


def test_coding_tables_do_not_depend_on_the_precision_the_model_is_held_in():
    """Tables are rebuilt at load wherever the model runs (fp32 CPU, bf16/fp32 GPU, fp64):
    they are computed in float64 on the CPU, so an encoder and a decoder on different
    machines derive the same integers from the same weights."""
    torch.manual_seed(3)
    ae = HyperpriorAutoencoder(TINY_AUTOENCODER)
    with torch.no_grad():  # move the priors away from their symmetric initialisation
        for p in ae.z_prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ae.update_tables()
    z_table, y_table = ae.z_prior.table.clone(), ae.y_model.table.clone()
    ae.double().update_tables()
    assert torch.equal(ae.z_prior.table, z_table) and torch.equal(ae.y_model.table, y_table)


def test_near_certain_latents_cost_almost_nothing():
    """Most latents of a low-rate file sit at the smallest scale, where 0 has probability
    1 − 6·10⁻⁶; the tables' resolution, not the Gaussian, sets what they cost (16-bit tables
    charged 3·10⁻³ bits each, ~10 % of a 0.1 bpp file)."""
    model = GaussianConditional()
    model.update_tables()
    zeros = np.zeros(1_000_000, dtype=np.int64)
    data = encode_symbols(zeros, np.zeros_like(zeros), model.table.numpy(), model.radius)
    assert len(data) * 8 / zeros.size < 1e-4  # bits per symbol
    np.testing.assert_array_equal(decode_symbols(data, np.zeros_like(zeros), model.table.numpy(), model.radius), zeros)


def test_extended_model_keeps_every_old_rate_and_lambda(ae):
    """New outer gain levels: λ stays log-linear, and an old rate (mapped onto the wider
    range) codes to the same bytes as before."""
    wide = ae.extended(low=2, high=1)
    wide.update_tables()
    c, levels = ae.config, ae.config.levels
    assert wide.config.levels == levels + 3
    torch.testing.assert_close(wide.log_gain[2:levels + 2], ae.log_gain)
    x = pad_to_stride(torch.rand(1, 3, 64, 64))
    with torch.no_grad():
        y = ae.analyze(x)
        for old in (0.0, 0.5, 1.0):
            new = (2 + old * (levels - 1)) / (levels + 2)
            assert float(wide.lmbda(torch.tensor(new))) == pytest.approx(float(ae.lmbda(torch.tensor(old))), rel=1e-5)
            assert wide.code_latents(y, new, (64, 64)).segments == ae.code_latents(y, old, (64, 64)).segments
        # The new lowest level quantises more coarsely than the old one: fewer bytes.
        sizes = [len(b"".join(model.code_latents(y, 0.0, (64, 64)).segments)) for model in (wide, ae)]
        assert sizes[0] <= sizes[1]
    assert wide.config.lambda_min < c.lambda_min and wide.config.lambda_max > c.lambda_max
    with pytest.raises(ValueError, match="at least one new level"):
        ae.extended(0, 0)


def test_entropy_parameters_do_not_depend_on_memory_format(ae):
    """A channels_last model (the fast CPU and GPU path) must derive bit-identical means and
    scales to a contiguous one, or files written by one do not decode with the other."""
    torch.manual_seed(3)
    z = torch.randint(-4, 5, (1, TINY_AUTOENCODER.n, 6, 9)).float()
    fast = copy.deepcopy(ae).to(memory_format=torch.channels_last)
    fast._cpu_cache.clear()
    for rate in (0.0, 0.37, 1.0):
        means, scales = ae.entropy_params(z, rate)
        fast_means, fast_scales = fast.entropy_params(z, rate)
        assert torch.equal(means, fast_means) and torch.equal(scales, fast_scales)
        np.testing.assert_array_equal(ae.y_model.scale_index(scales), fast.y_model.scale_index(fast_scales))


@pytest.fixture(scope="module")
def ae_ctx(ae) -> HyperpriorAutoencoder:
    """``ae`` with a context model whose refinement is not the identity (as after training)."""
    torch.manual_seed(4)
    model = ae.with_context()
    with torch.no_grad():
        torch.nn.init.normal_(model.context.fuse[-1].weight, std=0.2)
    model.update_tables()
    return model.eval()


def test_a_new_context_model_starts_as_the_hyperprior(ae):
    """Its last layer is zero: the same symbols, the same ŷ, one more segment."""
    ctx = ae.with_context()
    ctx.update_tables()
    x = pad_to_stride(torch.rand(1, 3, 70, 100))
    with torch.no_grad():
        y = ae.analyze(x)
        plain, two_pass = (model.code_latents(y, 0.5, tuple(x.shape[-2:])) for model in (ae, ctx))
        assert len(two_pass.segments) == 3 and two_pass.symbols_crc == plain.symbols_crc
        torch.testing.assert_close(ctx.decode_latents(two_pass.segments, 0.5, tuple(x.shape[-2:])),
                                   ae.decode_latents(plain.segments, 0.5, tuple(x.shape[-2:])), rtol=0, atol=0)
    with pytest.raises(ValueError, match="already has a context model"):
        ctx.with_context()


@pytest.mark.parametrize("rate", [0.0, 0.6])
def test_context_codec_round_trip_matches_the_training_reconstruction(ae_ctx, rate):
    """The decoder recovers every symbol, and g_s of its ŷ is what ``reconstruct`` gives
    the decoders in training (non-anchors quantised around the context means)."""
    torch.manual_seed(5)
    x = pad_to_stride(torch.rand(1, 3, 64, 128))
    with torch.no_grad():
        y = ae_ctx.analyze(x)
        latents = ae_ctx.code_latents(y, rate, tuple(x.shape[-2:]))
        y_hat = ae_ctx.decode_latents(latents.segments, rate, tuple(x.shape[-2:]), matches(latents.symbols_crc))
        torch.testing.assert_close(ae_ctx.synthesize(y_hat), ae_ctx.reconstruct(x, torch.tensor([rate])),
                                   atol=1e-4, rtol=0)
        assert ae_ctx.code_latents(y, rate, tuple(x.shape[-2:])).segments == latents.segments  # deterministic
        # The refinement really moved the non-anchor means: ŷ differs from the hyperprior's.
        ae_plain = copy.deepcopy(ae_ctx)
        ae_plain.context, ae_plain.config = None, TINY_AUTOENCODER
        hyper = ae_plain.code_latents(y, rate, tuple(x.shape[-2:]))
        assert not torch.equal(ae_plain.decode_latents(hyper.segments, rate, tuple(x.shape[-2:])), y_hat)


def test_context_model_refuses_a_file_with_the_wrong_number_of_passes(ae, ae_ctx):
    x = pad_to_stride(torch.rand(1, 3, 64, 64))
    with torch.no_grad():
        plain = ae.code_latents(ae.analyze(x), 0.5, tuple(x.shape[-2:]))
    with pytest.raises(BitstreamError, match="expected 3 latent segments for this model, found 2"):
        ae_ctx.decode_latents(plain.segments, 0.5, (64, 64))


def test_context_parameters_do_not_depend_on_memory_format(ae_ctx):
    torch.manual_seed(6)
    means = torch.randn(1, TINY_AUTOENCODER.m, 8, 12)
    scales = torch.rand(1, TINY_AUTOENCODER.m, 8, 12).double() * 4
    anchors = torch.round(torch.randn_like(means) * 3) * anchor_mask(8, 12)
    fast = copy.deepcopy(ae_ctx).to(memory_format=torch.channels_last)
    fast._cpu_cache.clear()
    m1, s1 = ae_ctx._tile_context(anchors, means, scales)
    m2, s2 = fast._tile_context(anchors.contiguous(memory_format=torch.channels_last), means, scales)
    assert torch.equal(m1, m2) and torch.equal(s1, s2)
    # Anchors keep the hyperprior's parameters; the others were refined.
    anchor = anchor_mask(8, 12).expand_as(means)
    assert torch.equal(m1[anchor], means[anchor]) and not torch.equal(m1[~anchor], means[~anchor])
