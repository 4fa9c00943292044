import dataclasses
import json

import numpy as np
import pytest
import torch

from engine.api import DecodeSettings, Engine
from engine.decoders.flow import sample_flow
from engine.decoders.post_filter import PostFilter, post_filter_loss
from engine.decoders.score_decoder import ScoreDecoder, TrainedFacts
from engine.decoders.unet import ConditionalUNet
from engine.errors import ImageError, SettingsError, WeightsError
from engine.evaluation.run import check_weights_record
from engine.testing import TINY_UNET, write_tiny_weights
from engine.training.decoders import (
    load_frozen_autoencoder,
    make_pairs,
    train_decoder,
    train_post_filter,
)
from tests.support import tiny_photos, tiny_train_config


def _random_flow() -> ScoreDecoder:
    torch.manual_seed(3)
    flow = ScoreDecoder(ConditionalUNet(TINY_UNET).with_rate_conditioning(), "flow", TrainedFacts(residual_sigma=0.0))
    with torch.no_grad():
        torch.nn.init.normal_(flow.net.head.weight, std=0.05)
    return flow


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x[0] * 255).round().byte().permute(1, 2, 0).numpy()


def test_an_untrained_post_filter_is_the_identity():
    x = _u8(torch.rand(1, 3, 40, 56))
    np.testing.assert_array_equal(PostFilter.new(TINY_UNET).apply_image(x, 0.5), x)


def test_started_from_a_flow_it_is_one_euler_step_from_x_ae_without_start_noise():
    flow = _random_flow()
    x_ae = _u8(torch.rand(1, 3, 32, 48))
    with torch.no_grad():
        step = sample_flow(lambda z, c, t: flow.net(z, c, t, rate=0.3), torch.from_numpy(x_ae).permute(2, 0, 1)[None] / 255,
                           steps=1, sigma=1e-12, residual_sigma=0.0)
    filtered = PostFilter.from_flow(flow).apply_image(x_ae, 0.3)
    assert np.abs(filtered.astype(int) - _u8(step).astype(int)).max() <= 1
    assert np.abs(filtered.astype(int) - x_ae.astype(int)).max() > 2  # the step did something


def test_only_a_rate_conditioned_flow_without_a_residual_prior_can_start_one(tmp_path):
    plain = ScoreDecoder(ConditionalUNet(TINY_UNET), "flow")
    with pytest.raises(WeightsError, match="rate-conditioned flow"):
        PostFilter.from_flow(plain)
    write_tiny_weights(tmp_path)
    with pytest.raises(WeightsError, match="'autoencoder' model; a post-filter starts from"):
        PostFilter.start_from(tmp_path / "autoencoder.safetensors")
    with pytest.raises(WeightsError, match="not a post-filter"):
        PostFilter.load(tmp_path / "flow.safetensors")


def test_save_load_round_trip_gives_the_same_filter(tmp_path):
    torch.manual_seed(0)
    original = PostFilter.from_flow(_random_flow())
    original.save(tmp_path / "pf.safetensors")
    loaded = PostFilter.load(tmp_path / "pf.safetensors")
    assert loaded.facts.init.startswith("flow decoder")
    x = _u8(torch.rand(1, 3, 33, 47))  # not a multiple of the network's: padded and cropped back
    out = loaded.apply_image(x, 0.7)
    assert out.shape == x.shape and out.dtype == np.uint8
    # bf16 storage: close to the fp32 original, not equal
    assert np.abs(out.astype(int) - original.apply_image(x, 0.7).astype(int)).max() <= 5
    with pytest.raises(SettingsError, match="rate must be in"):
        loaded.apply_image(x, 1.5)


def test_loss_of_the_identity_is_the_autoencoders_error():
    x, x_ae = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss = post_filter_loss(PostFilter.new(TINY_UNET).net, x, x_ae, torch.tensor([0.2, 0.9]))
    torch.testing.assert_close(loss, torch.mean((2 * x_ae - 2 * x) ** 2))


@pytest.fixture
def filtered_engine(tmp_path):
    return Engine(write_tiny_weights(tmp_path / "w", post_filter=True), device="cpu")


def test_the_engine_post_filters_the_autoencoder_decode_but_refines_g_s_output(filtered_engine):
    engine = filtered_engine
    rgb = (np.random.default_rng(1).random((40, 52, 3)) * 255).astype(np.uint8)
    enc = engine.encode(rgb, rate=0.6)
    assert "post_filter" not in vars(engine)  # encoding never loads it
    raw, shown = engine.decode_ae(enc.data, post_filter=False), engine.decode_ae(enc.data)
    assert shown.shape == raw.shape and not np.array_equal(shown, raw)
    np.testing.assert_array_equal(shown, engine.post_filter.apply_image(raw, enc.rate))
    # decoder "ae" is the post-filtered decode on every path; it needs the rate
    np.testing.assert_array_equal(engine.refine(raw, DecodeSettings("ae"), rate=enc.rate), shown)
    np.testing.assert_array_equal(engine.decode(enc.data, DecodeSettings("ae")), shown)
    with pytest.raises(SettingsError, match="post-filter depends on the rate"):
        engine.refine(raw, DecodeSettings("ae"))
    # the score-based decoders refine g_s's output, which they were trained on
    flow = DecodeSettings("flow", steps=2)
    np.testing.assert_array_equal(engine.decode(enc.data, flow), engine.refine(raw, flow, rate=enc.rate))


def test_a_realism_below_1_blends_the_sample_toward_the_post_filtered_decode(filtered_engine):
    engine = filtered_engine
    rgb = (np.random.default_rng(2).random((40, 52, 3)) * 255).astype(np.uint8)
    enc = engine.encode(rgb, rate=0.6)
    raw, shown = engine.decode_ae(enc.data, post_filter=False), engine.decode_ae(enc.data)
    full = engine.refine(raw, DecodeSettings("flow", steps=2, realism=1.0), rate=enc.rate)
    half_settings = DecodeSettings("flow", steps=2, realism=0.5)
    half = engine.refine(raw, half_settings, rate=enc.rate)
    toward_shown = 0.5 * full.astype(np.float64) + 0.5 * shown
    toward_raw = 0.5 * full.astype(np.float64) + 0.5 * raw
    assert np.abs(half - toward_shown).max() <= 1.0  # uint8 rounding of `full` and `half`
    assert np.abs(half - toward_raw).max() > 1.0
    # the caller's post-filtered decode is used as given, so the viewer need not filter twice
    np.testing.assert_array_equal(engine.refine(raw, half_settings, rate=enc.rate, post_filtered=shown), half)
    with pytest.raises(ImageError, match="post_filtered must have x_ae's shape"):
        engine.refine(raw, half_settings, rate=enc.rate, post_filtered=shown[:-1])
    with pytest.raises(SettingsError, match="blends toward the post-filtered decode.*pass the rate"):
        engine.refine(raw, half_settings)
    np.testing.assert_array_equal(engine.decode(enc.data, half_settings), half)


def test_the_post_filter_file_is_named_in_info_and_in_evaluation_records(filtered_engine, tmp_path):
    info = filtered_engine.info
    assert info.post_filter_hash is not None and len(info.post_filter_hash) == 16
    check_weights_record(tmp_path, info, has_rows=False)
    record = json.loads((tmp_path / "weights.json").read_text())
    assert record["post_filter_hash"] == info.post_filter_hash and record["realism_base"] == "post_filtered"
    plain = Engine(write_tiny_weights(tmp_path / "plain"), device="cpu")
    assert plain.post_filter is None and plain.info.post_filter_hash is None


def test_training_starts_from_a_flow_exports_and_reports_its_gain(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    _random_flow().save(weights / "start.safetensors")
    path = train_post_filter(weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                             tiny_train_config(tmp_path / "run", 2), init=weights / "start.safetensors")
    trained = PostFilter.load(path)
    assert trained.facts.train_steps == 2 and trained.facts.crop == 64
    log = [json.loads(line) for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    gains = [r["validation"]["val_gain_db"] for r in log if "validation" in r]
    assert len(gains) == 1 and np.isfinite(gains[0])
    # resuming continues the run; a different start is refused rather than mixed in
    resumed = train_post_filter(weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                                tiny_train_config(tmp_path / "run", 4), init=weights / "start.safetensors")
    assert PostFilter.load(resumed).facts.train_steps == 4
    with pytest.raises(SettingsError, match="other decoder settings"):
        train_post_filter(weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                          tiny_train_config(tmp_path / "run", 6))


def _on_post_filtered(engine: Engine, kind: str) -> None:
    """Re-stamp the engine folder's ``kind`` decoder as trained on the post-filtered decode."""
    path = engine.weights_dir / f"{kind}.safetensors"
    plain = ScoreDecoder.load(path)
    ScoreDecoder(plain.net, kind, dataclasses.replace(plain.facts, condition="post_filtered")).save(path)


def test_a_decoder_trained_on_the_post_filtered_decode_refines_it_through_the_engine(tmp_path):
    folder = write_tiny_weights(tmp_path / "w", post_filter=True)
    plain = Engine(folder, device="cpu")
    rgb = (np.random.default_rng(4).random((40, 52, 3)) * 255).astype(np.uint8)
    enc = plain.encode(rgb, rate=0.6)
    raw, shown = plain.decode_ae(enc.data, post_filter=False), plain.decode_ae(enc.data)
    flow = DecodeSettings("flow", steps=2, realism=1.0)
    refined_shown = plain.refine(shown, flow, rate=enc.rate)  # g_s's-output decoder given the filtered image
    _on_post_filtered(plain, "flow")
    engine = Engine(folder, device="cpu")
    assert engine.info.decoder_conditions == {"diffusion": "decoded", "flow": "post_filtered"}
    assert engine.info.refines_text("flow") == "the post-filtered autoencoder decode"
    # the same network refining the post-filtered decode instead of g_s's output
    np.testing.assert_array_equal(engine.refine(raw, flow, rate=enc.rate), refined_shown)
    np.testing.assert_array_equal(engine.decode(enc.data, flow), engine.refine(raw, flow, rate=enc.rate))
    np.testing.assert_array_equal(engine.refine(raw, flow, rate=enc.rate, post_filtered=shown),
                                  engine.refine(raw, flow, rate=enc.rate))
    with pytest.raises(SettingsError, match="refines the post-filtered decode.*pass the rate"):
        engine.refine(raw, flow)
    (folder / "postfilter.safetensors").unlink()
    with pytest.raises(WeightsError, match="flow decoder .* refines the post-filtered decode, but the folder "
                                           "has no postfilter.safetensors"):
        Engine(folder, device="cpu").refine(raw, flow, rate=enc.rate)


def test_pairs_through_the_post_filter_are_its_8_bit_output(tmp_path):
    weights = write_tiny_weights(tmp_path / "w", post_filter=True)
    ae = load_frozen_autoencoder(weights / "autoencoder.safetensors")
    post_filter = PostFilter.load(weights / "postfilter.safetensors")
    x = torch.rand(2, 3, 64, 64)
    raw, rate = make_pairs(ae, x, torch.Generator().manual_seed(1))
    filtered, same_rate = make_pairs(ae, x, torch.Generator().manual_seed(1), post_filter)
    assert torch.equal(rate, same_rate)
    for i in range(2):
        expected = torch.from_numpy(post_filter.apply_image(_u8(raw[i:i + 1]), float(rate[i]))).permute(2, 0, 1) / 255
        torch.testing.assert_close(filtered[i], expected, atol=1 / 255 + 1e-6, rtol=0)
    assert torch.equal(filtered, (filtered * 255).round() / 255) and not torch.equal(filtered, raw)


def test_pairs_are_the_codecs_fp32_decode_even_inside_the_trainers_bf16_autocast(tmp_path):
    weights = write_tiny_weights(tmp_path / "w", post_filter=True)
    ae = load_frozen_autoencoder(weights / "autoencoder.safetensors")
    post_filter = PostFilter.load(weights / "postfilter.safetensors")
    x = torch.rand(2, 3, 64, 64)
    for pf in (None, post_filter):
        plain, _ = make_pairs(ae, x, torch.Generator().manual_seed(1), pf)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside, _ = make_pairs(ae, x, torch.Generator().manual_seed(1), pf)
        assert inside.dtype == torch.float32
        torch.testing.assert_close(inside, plain, atol=0, rtol=0)


def test_decoder_training_on_the_post_filtered_decode_is_recorded_and_kept_on_resume(tmp_path):
    weights = write_tiny_weights(tmp_path / "w", post_filter=True)
    args = ("flow", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1))
    path = train_decoder(*args, tiny_train_config(tmp_path / "run", 2), TINY_UNET,
                         post_filter_path=weights / "postfilter.safetensors")
    assert ScoreDecoder.load(path).facts.condition == "post_filtered"
    with pytest.raises(SettingsError, match="other decoder settings"):  # resumed without it
        train_decoder(*args, tiny_train_config(tmp_path / "run", 4), TINY_UNET)
    with pytest.raises(SettingsError, match="refine the post-filtered decode: pass the post-filter"):
        train_decoder(*args, tiny_train_config(tmp_path / "next", 2), init=path)
    moved = train_decoder(*args, tiny_train_config(tmp_path / "moved", 2), init=weights / "flow.safetensors",
                          post_filter_path=weights / "postfilter.safetensors")
    assert ScoreDecoder.load(moved).facts.condition == "post_filtered"
