"""The control panel: values in and out, ranges from the model, decoder defaults, tooltips."""
from __future__ import annotations

import dataclasses

import pytest

from engine.api import DecodeSettings, ModelInfo, StartNoise
from engine.decoders.realism_schedule import RealismSchedule
from viewer.widgets.controls import TIPS, ControlPanel, ControlValues
from viewer.widgets.float_slider import FloatSlider

INFO = ModelInfo(model_id="m", weights_hash="h", rate_range=(0.0, 1.0), bpp_range=(0.1, 0.8),
                 shift_ranges={"diffusion": (0.5, 2.0), "flow": (-3.0, 3.0)}, decoders=("ae", "diffusion", "flow"),
                 defaults={"diffusion": DecodeSettings("diffusion", steps=32, shift=1.5, noise=0.2, realism=None),
                           "flow": DecodeSettings("flow", steps=8, shift=-0.5, noise=1.0, realism=0.5)},
                 realism={"diffusion": RealismSchedule(((0.5, 1.0), (0.7, 0.5)))})


@pytest.fixture
def panel(qtbot):
    widget = ControlPanel(ControlValues(bpp=0.2, steps=16, seed=7, decoder="diffusion"))
    qtbot.addWidget(widget)
    widget.set_info(INFO)
    return widget


def test_values_round_trip_through_a_dict_and_ignore_junk():
    values = ControlValues(bpp=0.3, optimise=True, decoder="flow", steps=8, shift=1.2, noise=0.5, seed=9,
                           realism=0.4, realism_auto=False, codec="webp", device="cpu")
    assert ControlValues.from_dict(values.to_dict()) == values
    assert ControlValues.from_dict({"steps": "not a number", "bogus": 1, "seed": "12"}) == ControlValues(seed=12)


def test_settings_carry_the_decoder_knobs():
    s = ControlValues(decoder="flow", steps=3, noise=0.25, seed=5, realism=0.5, realism_auto=False).settings()
    assert (s.decoder, s.steps, s.noise, s.seed, s.realism) == ("flow", 3, 0.25, 5, 0.5)
    assert ControlValues(realism=0.5).settings().realism is None  # Auto: the file's rate decides


def test_model_info_sets_the_slider_ranges(panel):
    assert panel.bpp.range() == (0.1, 0.8)
    assert panel.shift.range() == (0.5, 2.0)
    assert panel.values().bpp == pytest.approx(0.2, rel=0.01)
    assert panel.values().shift == pytest.approx(0.5, abs=0.01)  # 0, clamped into this diffusion's range


def test_moving_a_control_emits_the_new_values(panel, qtbot):
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.steps.setValue(40)
    assert blocker.args[0].steps == 40
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.new_seed.click()
    assert blocker.args[0].seed == panel.seed.value()
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.optimise.click()
    assert blocker.args[0].optimise is True


def test_switching_decoder_brings_its_defaults_and_its_shift_range(panel, qtbot):
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.decoder.setCurrentIndex(panel.decoder.findData("flow"))
    values = blocker.args[0]
    assert (values.decoder, values.steps, values.noise, values.realism) == ("flow", 8, 1.0, 0.5)
    assert not values.realism_auto and values.settings().realism == 0.5  # this model's flow: one realism
    assert panel.realism.value() == pytest.approx(0.5) and panel.realism.isEnabled()
    assert values.seed == 7  # the seed is the user's, not the decoder's
    # the flow's shift moves its step times, over its own range (below the diffusion's)
    assert panel.shift.isEnabled() and panel.shift.range() == (-3.0, 3.0)
    assert values.shift == pytest.approx(-0.5, abs=0.01) and values.settings().shift == values.shift
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.decoder.setCurrentIndex(panel.decoder.findData("diffusion"))
    assert blocker.args[0].realism_auto and blocker.args[0].settings().realism is None
    assert not panel.realism.isEnabled()
    assert panel.shift.range() == (0.5, 2.0) and blocker.args[0].shift == pytest.approx(1.5, abs=0.01)
    panel.decoder.setCurrentIndex(panel.decoder.findData("ae"))
    assert not panel.shift.isEnabled()  # the autoencoder has no schedule


def test_a_flow_remembered_before_it_read_the_shift_keeps_uniform_steps():
    old = {"decoder": "flow", "steps": 8, "shift": 1.0}  # stored without a version
    assert ControlValues.from_dict(old).shift == 0.0
    assert ControlValues.from_dict({**old, "decoder": "diffusion"}).shift == 1.0
    assert ControlValues.from_dict({**old, "version": 2}).shift == 1.0  # set by hand since


def test_auto_realism_shows_the_files_blend_and_unticking_it_keeps_that_blend(panel, qtbot):
    assert panel.values().realism_auto and not panel.realism.isEnabled()
    with qtbot.assertNotEmitted(panel.changed):
        panel.show_realism(0.75)  # what the main window calls once the file's rate is known
    assert panel.realism.value() == pytest.approx(0.75)
    with qtbot.waitSignal(panel.changed, timeout=1000) as blocker:
        panel.realism_auto.click()
    assert blocker.args[0].settings().realism == pytest.approx(0.75) and panel.realism.isEnabled()
    panel.show_realism(0.2)  # a manual realism is the user's: a new file does not move it
    assert panel.values().realism == pytest.approx(0.75)


def test_set_values_is_silent(panel, qtbot):
    with qtbot.assertNotEmitted(panel.changed):
        panel.set_values(ControlValues(bpp=0.5, steps=3))
    assert panel.values().steps == 3


def test_every_control_explains_itself(panel):
    for name in TIPS:
        assert getattr(panel, name).toolTip() == TIPS[name]


def test_file_label_shows_the_real_size(panel):
    panel.show_encoded(7213, 0.1468)
    assert "7,213 bytes" in panel.file_label.text() and "0.147 bpp" in panel.file_label.text()


@pytest.mark.parametrize("log", [False, True])
def test_float_slider_maps_its_ends_and_clamps(qtbot, log):
    slider = FloatSlider(0.05, 1.0, 0.2, log=log)
    qtbot.addWidget(slider)
    assert slider.value() == pytest.approx(0.2, rel=0.01)
    slider.setValue(5.0)
    assert slider.value() == pytest.approx(1.0)
    slider.setValue(0.0)
    assert slider.value() == pytest.approx(0.05)


def test_about_lists_the_model_facts():
    from viewer.window.about import model_facts_html

    html = model_facts_html(INFO, "cpu")
    assert "0.100–0.800 bpp" in html and "diffusion, flow" in html and "Running on</td><td>the CPU</td>" in html
    assert "Schedule shift range, diffusion</td><td>+0.50 to +2.00</td>" in html
    assert "Schedule shift range, flow</td><td>-3.00 to +3.00</td>" in html
    assert "Flow start noise" not in html  # weights without a flow have none to state
    one = dataclasses.replace(INFO, flow_sigma=StartNoise.constant(0.1))
    assert "σ = 0.1</td>" in model_facts_html(one, "cpu")
    falling = dataclasses.replace(INFO, flow_sigma=StartNoise(0.25, 0.04))
    assert "σ = 0.25 at rate 0 to 0.04 at rate 1 (log-linear)</td>" in model_facts_html(falling, "cpu")
    assert "Default realism, diffusion</td><td>1 up to rate 0.5, 0.5 from rate 0.7 (linear between)</td>" in html
    assert "Post-filter" not in html
    filtered = dataclasses.replace(INFO, post_filter_hash="00aa11bb22cc33dd")
    assert "<td>Post-filter</td><td>yes (<code>00aa11bb22cc33dd</code>)" in model_facts_html(filtered, "cpu")
    conditioned = dataclasses.replace(filtered, decoder_conditions={"diffusion": "decoded", "flow": "post_filtered"})
    html = model_facts_html(conditioned, "cpu")
    assert "<td>The flow decoder refines</td><td>the post-filtered autoencoder decode</td>" in html
    assert "<td>The diffusion decoder refines</td><td>the autoencoder's unfiltered output (g_s)</td>" in html
    assert "No model loaded" in model_facts_html(None, "")


def test_a_first_run_takes_the_models_recommended_settings(qtbot):
    panel = ControlPanel(ControlValues(decoder="diffusion", steps=16, noise=0.0, realism=0.3))
    qtbot.addWidget(panel)
    panel.set_info(INFO, use_defaults=True)
    values = panel.values()
    assert (values.steps, values.noise) == (32, 0.2) and values.shift == pytest.approx(1.5, abs=0.005)
    assert values.realism_auto and values.settings().realism is None  # the model's, not the panel's 0.3
    assert not panel.realism.isEnabled()
