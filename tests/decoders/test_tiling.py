import pytest
import torch

from engine.decoders.tiling import blend_window, pad_to_multiple, tile_starts, tiled
from engine.decoders.unet import ConditionalUNet, UNetConfig
from engine.errors import Cancelled, SettingsError
from engine.progress import CancelToken


def pointwise(z, x_ae, level):
    return z * level[:, None, None, None] + x_ae ** 2


def images(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g), torch.randn(n, 3, h, w, generator=g)


@pytest.mark.parametrize("size", [(70, 150), (16, 16), (10, 7), (33, 200)])
def test_tiled_pointwise_network_equals_the_whole_image_run(size):
    z, c = images(2, *size)
    level = torch.tensor([0.5, -3.0])
    out = tiled(pointwise, tile=32, overlap=8, batch=3, multiple=16)(z, c, level)
    assert out.shape == z.shape
    assert torch.allclose(out, pointwise(z, c, level), atol=1e-6)


def test_network_only_ever_sees_bounded_tiles_in_bounded_batches():
    shapes = []

    def record(z, x_ae, level):
        shapes.append(tuple(z.shape))
        return z
    z, c = images(1, 200, 300)
    tiled(record, tile=64, overlap=16, batch=2, multiple=16)(z, c, torch.zeros(1))
    assert all(s[0] <= 2 and s[2:] == (64, 64) for s in shapes)
    assert sum(s[0] for s in shapes) == len(tile_starts(208, 64, 16)) * len(tile_starts(304, 64, 16))


def test_tile_starts_cover_the_image_with_the_requested_overlap():
    for size, tile, overlap in [(300, 64, 16), (4000, 512, 64), (513, 512, 64), (64, 64, 8)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == max(size, tile)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blend_windows_of_neighbours_cross_fade_to_one():
    w = blend_window(32, 48, 8)
    assert w.min() > 0 and w.max() == 1
    assert torch.all(w[6:-6, 6:-6] == 1) and torch.all(w[:2, :] < 0.01)
    row = blend_window(32, 32, 8)[16]  # a row through the middle, where the vertical weight is 1
    overlap_sum = row[24:] + row[:8]  # a neighbour starting 24 px later
    assert torch.allclose(overlap_sum, torch.ones(8), atol=2e-3)
    assert torch.equal(blend_window(4, 4, 0), torch.ones(4, 4))


def test_padding_reflects_and_falls_back_to_replicate_for_tiny_images():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4) and torch.equal(padded[..., 3, :], x[..., 1, :])
    assert pad_to_multiple(x, 8).shape == (1, 1, 8, 8)


def seam_ratio(out, seams):
    """Column-to-column change at each seam relative to the change nearby (2-px steps,
    which skip the pixel-shuffle pattern of the network's head)."""
    change = (out[..., 2:] - out[..., :-2]).abs().mean(dim=(0, 1, 2))
    return max((change[s - 1] / change[s - 12:s + 10].median()).item() for s in seams)


def test_blended_tiles_of_a_conv_net_leave_no_seams():
    # The UNet as initialised, with a random output layer so that it computes something:
    # convolutions with zero padding, strided and upsampling paths, a GroupNorm over the tile.
    config = UNetConfig(base=8, mults=(1, 2), blocks=1, head_dim=8, groups=4, level_dim=16)
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 192), indexing="ij")
    smooth = 0.8 * torch.stack([torch.sin(6 * x + 3 * y), torch.cos(4 * y - 5 * x), x * y])[None]
    blended, abutting = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        net = ConditionalUNet(config).eval()
        torch.nn.init.normal_(net.head.weight, std=0.1)
        with torch.no_grad():
            run = lambda overlap: tiled(net, tile=64, overlap=overlap, multiple=4)(
                smooth.flip(-1), smooth, torch.tensor([0.5]))
            blended.append(seam_ratio(run(16), [43, 64, 85, 107, 128, 149]))
            abutting.append(seam_ratio(run(0), [64, 128]))  # 192 = 3 tiles exactly, no overlap
    # Without blending the tile borders stand out; with it they look like anywhere else.
    assert min(abutting) > 5
    assert max(blended) < 1.4


def test_cancel_is_checked_between_tile_batches():
    token, calls = CancelToken(), []

    def cancel_after_first(z, x_ae, level):
        calls.append(1)
        token.cancel()
        return z
    z, c = images(1, 128, 128)
    with pytest.raises(Cancelled):
        tiled(cancel_after_first, tile=32, overlap=8, batch=1, multiple=16, cancel=token)(z, c, torch.zeros(1))
    assert len(calls) == 1


def test_invalid_tiling_settings_are_refused():
    with pytest.raises(SettingsError, match="tile size 40 must be a positive multiple of 16"):
        tiled(pointwise, tile=40)
    with pytest.raises(SettingsError, match="overlap 64 must be in"):
        tiled(pointwise, tile=64, overlap=64)
