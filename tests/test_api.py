import functools

import numpy as np
import pytest
import torch

from engine.api import DecodeSettings, Engine, to_uint8
from engine.codec import bitstream
from engine.codec.images import Colour
from engine.decoders.score_decoder import ScoreDecoder
from engine.decoders.unet import ConditionalUNet
from engine.errors import (
    Cancelled,
    ImageError,
    ModelMismatchError,
    SettingsError,
    WeightsError,
)
from engine.progress import CancelToken
from engine.testing import TINY_UNET, write_tiny_weights


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(write_tiny_weights(tmp_path_factory.mktemp("w")), device="cpu")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:75, 0:130]
    base = np.stack([xx * 1.5, yy * 3, (xx + yy)], -1) % 256
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_encode_decode_round_trip_keeps_size(engine, photo):
    enc = engine.encode(photo, rate=0.5)
    assert enc.width == 130 and enc.height == 75
    assert enc.bpp == pytest.approx(len(enc.data) * 8 / (130 * 75))
    out = engine.decode_ae(enc.data)
    assert out.shape == photo.shape and out.dtype == np.uint8
    header = engine.read_header(enc.data)
    assert header.rate == enc.rate and (header.width, header.height) == (130, 75)


def test_decode_is_deterministic(engine, photo):
    enc = engine.encode(photo, rate=0.3)
    np.testing.assert_array_equal(engine.decode_ae(enc.data), engine.decode_ae(enc.data))


@pytest.mark.parametrize("target", [0.5, 2.0, 6.0])
def test_bpp_target_lands_at_or_below(engine, photo, target):
    low = engine.encode(photo, rate=0.0).bpp
    if target < low:
        with pytest.raises(SettingsError, match="below the lowest rate"):
            engine.encode(photo, bpp=target)
        return
    enc = engine.encode(photo, bpp=target)
    assert enc.bpp <= target
    if enc.rate < 1.0:  # the search took the highest rate that fits: a bit more would not
        assert engine.encode(photo, rate=min(1.0, enc.rate + 0.01)).bpp >= enc.bpp


def test_rate_and_bpp_are_exclusive(engine, photo):
    with pytest.raises(SettingsError):
        engine.encode(photo)
    with pytest.raises(SettingsError):
        engine.encode(photo, rate=0.5, bpp=0.5)
    with pytest.raises(SettingsError, match="outside"):
        engine.encode(photo, rate=1.5)


def test_file_from_other_weights_is_refused(engine, photo, tmp_path):
    other = Engine(write_tiny_weights(tmp_path, seed=7, decoders=False), device="cpu")
    data = other.encode(photo, rate=0.5).data
    with pytest.raises(ModelMismatchError):
        engine.decode_ae(data)


def test_a_context_model_codes_in_two_passes_through_the_engine(tmp_path, photo):
    engine = Engine(write_tiny_weights(tmp_path, context=True, decoders=False), device="cpu")
    target = 1.5 * engine.encode(photo, rate=0.0).bpp
    enc = engine.encode(photo, bpp=target)  # the rate search sees the two-pass sizes
    assert target * 0.9 <= enc.bpp <= target
    _, segments = bitstream.unpack(enc.data)
    assert len(segments) == 3  # ẑ, anchors, the rest
    out = engine.decode_ae(enc.data)
    assert out.shape == photo.shape and np.array_equal(engine.decode_ae(enc.data), out)


def test_synthesis_runs_in_fp32_where_bf16_is_fast(tmp_path, photo, monkeypatch):
    """bf16 synthesis costs 1–1.5 dB on nearly flat photos, so the autoencoder decode must not
    follow the engine's bf16 speed policy (which the encoder and score decoders keep)."""
    monkeypatch.setattr("engine.api.cpu_supports_bf16", lambda: True)  # as with AVX-512 bf16
    fast = Engine(write_tiny_weights(tmp_path), device="cpu")
    assert fast._fast
    data = fast.encode(photo, rate=0.8).data
    header, segments = bitstream.unpack(data)
    ae = fast.autoencoder
    with torch.inference_mode():
        y_hat = ae.decode_latents(segments, header.rate, (75, 130), functools.partial(bitstream.check_payload, header))
        fp32 = ae.synthesize(y_hat)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = ae.synthesize(y_hat)
    assert not torch.equal(fp32, bf16)  # the precisions do differ on these weights
    np.testing.assert_array_equal(fast.decode_ae(data), to_uint8(fp32[..., :75, :130]))


def test_gray_colour_is_recorded(engine, photo):
    enc = engine.encode(photo, rate=0.5, colour="gray")
    header, _ = bitstream.unpack(enc.data)
    assert header.colour == Colour.GRAY


def test_info_lists_decoders_and_defaults(engine):
    info = engine.info
    assert set(info.decoders) == {"ae", "diffusion", "flow"}
    assert info.defaults["flow"].decoder == "flow"
    low, high = info.shift_ranges["diffusion"]
    assert low <= info.defaults["diffusion"].shift <= high
    assert info.shift_ranges["flow"] == (-3.0, 3.0) and info.defaults["flow"].shift == 0.0
    assert info.flow_sigma == engine.decoder("flow").facts.flow_sigma
    from engine.weights import file_hash
    assert info.decoder_hashes == {kind: file_hash(engine.weights_dir / f"{kind}.safetensors")
                                   for kind in ("diffusion", "flow")}
    assert info.decoder_hashes["diffusion"] != info.decoder_hashes["flow"]


def test_decoders_load_once_on_first_use(tmp_path, photo):
    weights = write_tiny_weights(tmp_path)
    engine = Engine(weights, device="cpu")
    # A damaged decoder file does not stop compression or autoencoder-only decoding...
    (weights / "flow.safetensors").write_bytes((weights / "flow.safetensors").read_bytes()[:2000])
    x_ae = engine.decode_ae(engine.encode(photo, rate=0.5).data)
    assert engine.decoder_kinds == ("diffusion", "flow")
    # ...it is reported when that decoder is first used; a loaded decoder is kept.
    with pytest.raises(WeightsError):
        engine.refine(x_ae, DecodeSettings("flow", steps=1))
    assert engine.decoder("diffusion") is engine.decoder("diffusion")
    with pytest.raises(SettingsError, match="no weights for the 'gan' decoder"):
        engine.decoder("gan")


def test_refine_streams_steps_and_cancels(engine, photo):
    enc = engine.encode(photo, rate=0.5)
    x_ae = engine.decode_ae(enc.data)
    seen = []
    out = engine.refine(x_ae, DecodeSettings("flow", steps=3), rate=enc.rate, on_step=seen.append)
    assert out.shape == photo.shape and [s.index for s in seen] == [1, 2, 3]
    token = CancelToken()

    def cancel_at_two(info):
        if info.index == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.refine(x_ae, DecodeSettings("diffusion", steps=5), rate=enc.rate, on_step=cancel_at_two, cancel=token)


def test_ae_decoder_returns_autoencoder_output(engine, photo):
    x_ae = engine.decode_ae(engine.encode(photo, rate=0.5).data)
    np.testing.assert_array_equal(engine.refine(x_ae, DecodeSettings("ae")), x_ae)


def test_side_over_the_format_limit_is_an_image_error(engine, monkeypatch):
    monkeypatch.setattr(bitstream, "MAX_SIDE", 64)
    with pytest.raises(ImageError, match=r"a 65×10 image is over the .hfd limits \(64 px a side, 268 MP\)"):
        engine.encode(np.zeros((10, 65, 3), np.uint8), rate=0.5)


def test_a_rate_conditioned_decoder_gets_the_rate_of_the_file(tmp_path, photo):
    weights = write_tiny_weights(tmp_path)
    torch.manual_seed(0)
    net = ConditionalUNet(TINY_UNET).with_rate_conditioning()
    for p in net.parameters():  # as if trained: the output depends on every input, the rate included
        torch.nn.init.normal_(p, std=0.05)
    ScoreDecoder(net, "diffusion").save(weights / "diffusion.safetensors")
    engine = Engine(weights, device="cpu")
    settings = DecodeSettings("diffusion", steps=2)
    enc = engine.encode(photo, rate=0.3)
    x_ae = engine.decode_ae(enc.data)
    with pytest.raises(SettingsError, match="depends on the rate"):
        engine.refine(x_ae, settings)
    decoded = engine.decode(enc.data, settings)
    np.testing.assert_array_equal(decoded, engine.refine(x_ae, settings, rate=enc.rate))
    assert not np.array_equal(decoded, engine.refine(x_ae, settings, rate=0.9))


def test_encode_and_decode_stop_at_a_cancel_and_a_bpp_search_reports_the_images_reach(engine, photo):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.encode(photo, bpp=0.5, cancel=token)
    encoded = engine.encode(photo, bpp=0.5)
    low, high = encoded.reach
    assert low <= encoded.bpp <= high and low < high
    assert engine.encode(photo, rate=0.0).bpp == low and engine.encode(photo, rate=1.0).bpp == high
    assert engine.encode(photo, rate=0.5).reach is None  # a rate says nothing of the ends
    with pytest.raises(Cancelled):
        engine.decode_ae(encoded.data, cancel=token)
