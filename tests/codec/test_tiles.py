"""The codec in tiles: spans, and tiled transforms and entropy coding against the whole-grid ones
on images cut into many tiles (tile sizes shrunk to a few grid elements)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.codec import autoencoder as codec
from engine.codec import bitstream
from engine.codec.autoencoder import HyperpriorAutoencoder, pad_to_stride
from engine.codec.tiles import Span, spans
from engine.testing import TINY_AUTOENCODER
from tests.support import matches, photo_like, single_thread  # noqa: F401 (fixture)


def test_spans_cover_the_grid_once_with_clipped_margins():
    assert spans(10, 4, 2) == [Span(0, 4, 0, 6), Span(4, 8, 2, 10), Span(8, 10, 6, 10)]
    assert spans(3, 8, 2) == [Span(0, 3, 0, 3)]
    assert Span(4, 8, 2, 10).inner == slice(2, 6) and Span(1, 2, 0, 3).scaled(4) == Span(4, 8, 0, 12)
    with pytest.raises(ValueError):
        spans(10, 0, 1)


@pytest.fixture(scope="module")
def models() -> dict[str, HyperpriorAutoencoder]:
    torch.manual_seed(0)
    plain = HyperpriorAutoencoder(TINY_AUTOENCODER)
    with torch.no_grad():  # latents that do not all round to zero, as in write_tiny_weights
        spread = torch.linspace(1.0, 5.0, TINY_AUTOENCODER.levels).unsqueeze(1)
        plain.log_gain.copy_(spread.expand_as(plain.log_gain))
        plain.log_inv_gain.copy_(-spread.expand_as(plain.log_inv_gain))
    context = plain.with_context()
    with torch.no_grad():
        torch.nn.init.normal_(context.context.fuse[-1].weight, std=0.2)
    for model in (plain, context):
        model.update_tables()
        model.eval()
    return {"hyperprior": plain, "context": context}


@pytest.fixture
def small_tiles(monkeypatch):
    """Transform tiles of 2 y elements, latent tiles of 1 z element: a 200×330 photo is 60 and 24 tiles."""
    monkeypatch.setattr(codec, "TRANSFORM_TILE", 2)
    monkeypatch.setattr(codec, "LATENT_TILE", 1)


PHOTO = photo_like(200, 330, seed=4)


def test_tiled_analysis_and_synthesis_agree_with_the_whole_image(models, small_tiles):
    model = models["hyperprior"]
    with torch.no_grad():
        whole_y = model.analyze(pad_to_stride(torch.from_numpy(PHOTO).permute(2, 0, 1)[None].float() / 255))
        tiled_y = model.analyze_image(PHOTO, torch.device("cpu"))
        torch.testing.assert_close(tiled_y, whole_y, atol=1e-5, rtol=1e-5)
        whole = (model.synthesize(whole_y)[0, :, :200, :330] * 255).round().byte().permute(1, 2, 0).numpy()
    tiled = model.synthesize_image(whole_y, (200, 330), torch.device("cpu"))
    difference = np.abs(tiled.astype(int) - whole.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # the stated tolerance


@pytest.mark.parametrize("kind", ["hyperprior", "context"])
def test_tiled_entropy_coding_round_trips_and_writes_the_whole_grids_bytes(models, kind, monkeypatch):
    model = models[kind]
    y = model.analyze_image(PHOTO, torch.device("cpu"))
    whole = model.code_latents(y, 0.6, (200, 330))  # one latent tile: the computation before tiling
    monkeypatch.setattr(codec, "LATENT_TILE", 1)
    monkeypatch.setattr(codec, "TRANSFORM_TILE", 2)
    tiled = model.code_latents(y, 0.6, (200, 330))
    assert tiled.segments == whole.segments and tiled.symbols_crc == whole.symbols_crc
    y_hat = model.decode_latents(tiled.segments, 0.6, (200, 330), matches(tiled.symbols_crc))
    monkeypatch.setattr(codec, "LATENT_TILE", 32)
    torch.testing.assert_close(y_hat, model.decode_latents(whole.segments, 0.6, (200, 330)))


def test_a_version_2_file_decodes_to_the_same_pixels(tmp_path):
    """Files written before the payload checksum covered the header decode as they did."""
    from engine.api import Engine
    from engine.testing import write_tiny_weights

    engine = Engine(write_tiny_weights(tmp_path / "w"), device="cpu")
    encoded = engine.encode(PHOTO, rate=0.5)
    header, segments = bitstream.unpack(encoded.data)
    found = []
    engine.autoencoder.decode_latents(segments, header.rate, (200, 330), lambda y_crc, _: found.append(y_crc))
    old = bitstream.pack(dataclasses.replace(header, format_version=2, latent_crc=found[0]), segments)
    np.testing.assert_array_equal(engine.decode_ae(old), engine.decode_ae(encoded.data))
