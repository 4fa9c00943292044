"""The default realism that follows the rate a file was coded at: the schedule and how the engine uses it."""
import json

import numpy as np
import pytest

from engine.api import FALLBACK_DEFAULTS, DecodeSettings, Engine
from engine.decoders.realism_schedule import RealismSchedule
from engine.errors import SettingsError, WeightsError
from engine.testing import write_tiny_weights

RAMP = [[0.55, 1.0], [0.75, 0.5]]


def test_schedule_holds_its_ends_and_is_linear_between():
    schedule = RealismSchedule.from_json(RAMP)
    assert schedule.varies
    assert [schedule.at(r) for r in (0.0, 0.55, 0.65, 0.75, 1.0)] == [1.0, 1.0, 0.75, 0.5, 0.5]
    assert schedule.at(0.6) == 0.875
    assert schedule.at(0.5999) == 0.875  # resolved to the three decimals a user sees
    assert schedule.to_json() == RAMP
    assert RealismSchedule.from_json(schedule.to_json()) == schedule
    assert schedule.describe() == "1 up to rate 0.55, 0.5 from rate 0.75 (linear between)"


def test_a_number_is_a_constant_schedule():
    schedule = RealismSchedule.from_json(0.5)
    assert not schedule.varies and schedule.at(0.0) == schedule.at(1.0) == 0.5
    assert schedule.to_json() == 0.5 and schedule.describe() == "0.5"


@pytest.mark.parametrize("value, message", [
    ([], "at least one"), ([[0.4, 1.0], [0.4, 0.5]], "must increase"), ([[1.5, 1.0]], r"rates must be in \[0, 1\]"),
    ([[0.4, 1.5]], r"realism must be in \[0, 1\]"), ("high", "a number or"), ([[0.4]], "a number or"),
    (True, "a number or")])
def test_bad_schedules_are_refused_with_the_reason(value, message):
    with pytest.raises(SettingsError, match=message):
        RealismSchedule.from_json(value)


@pytest.mark.parametrize("rate", [-0.1, 1.1, float("nan")])
def test_a_rate_outside_the_model_is_refused(rate):
    with pytest.raises(SettingsError, match=r"the rate must be in \[0, 1\]"):
        RealismSchedule.constant(1.0).at(rate)


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    weights = write_tiny_weights(tmp_path_factory.mktemp("w"))
    (weights / "decode_defaults.json").write_text(json.dumps(
        {"diffusion": {"steps": 2, "shift": 0.0, "noise": 0.0, "realism": [[0.2, 1.0], [0.8, 0.0]]}}))
    return Engine(weights, device="cpu")


def test_engine_defaults_leave_realism_to_the_file(scheduled):
    info = scheduled.info
    assert info.defaults["diffusion"].realism is None and info.defaults["flow"].realism is None
    assert info.realism["diffusion"].varies and not info.realism["flow"].varies  # flow: the fallback, 1
    assert info.resolve(info.defaults["diffusion"], 0.5).realism == 0.5
    assert info.resolve(info.defaults["flow"], 0.5).realism == 1.0
    explicit = DecodeSettings("diffusion", steps=2, realism=0.2)
    assert info.resolve(explicit, 0.5) is explicit
    assert info.settings_record(info.defaults["diffusion"])["realism"] == [[0.2, 1.0], [0.8, 0.0]]
    assert info.settings_record(explicit)["realism"] == 0.2


def test_decode_blends_by_the_rate_of_the_file(scheduled):
    rng = np.random.default_rng(1)
    photo = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    enc = scheduled.encode(photo, rate=0.65)
    x_ae = scheduled.decode_ae(enc.data)
    default = scheduled.info.defaults["diffusion"]
    decoded = scheduled.decode(enc.data, default)
    np.testing.assert_array_equal(decoded, scheduled.refine(x_ae, default, rate=enc.rate))
    np.testing.assert_array_equal(decoded, scheduled.refine(
        x_ae, DecodeSettings("diffusion", steps=2, shift=0.0, noise=0.0, realism=0.25), rate=enc.rate))
    assert not np.array_equal(decoded, scheduled.refine(
        x_ae, DecodeSettings("diffusion", steps=2, shift=0.0, noise=0.0, realism=1.0), rate=enc.rate))
    with pytest.raises(SettingsError, match="depends on the rate the file was coded at"):
        scheduled.refine(x_ae, default)


def test_settings_a_defaults_file_leaves_out_keep_the_fallback(tmp_path):
    weights = write_tiny_weights(tmp_path)
    (weights / "decode_defaults.json").write_text(json.dumps({"flow": {"steps": 8, "noise": 0.5, "realism": 0.5}}))
    info = Engine(weights, device="cpu").info
    flow = info.defaults["flow"]
    # a file from before the flow read the shift: its flow keeps uniform steps
    assert (flow.steps, flow.noise, flow.shift, flow.solver) == (8, 0.5, 0.0, "euler")
    assert info.defaults["diffusion"] == DecodeSettings("diffusion", realism=None, **FALLBACK_DEFAULTS["diffusion"])


def test_unreadable_decode_defaults_name_the_file(tmp_path):
    weights = write_tiny_weights(tmp_path)
    path = weights / "decode_defaults.json"
    for text in ("{not json", json.dumps({"flow": {"realism": [[1.0, 2.0]]}}), json.dumps({"flow": {"stepz": 2}})):
        path.write_text(text)
        with pytest.raises(WeightsError, match="unreadable decode defaults in .*decode_defaults.json"):
            Engine(weights, device="cpu")
