"""What the viewer remembers between runs (in a test-only ini file)."""
from __future__ import annotations

import pytest

from tests.viewer.support import settings_in
from viewer.widgets.controls import ControlPanel, ControlValues
from viewer.window.settings import MAX_RECENT, ViewerSettings


def test_recent_files_are_newest_first_unique_and_bounded(tmp_path):
    settings = ViewerSettings(settings_in(tmp_path))
    paths = [tmp_path / f"{i}.png" for i in range(MAX_RECENT + 3)]
    for path in paths:
        settings.add_recent(path)
    settings.add_recent(paths[-3])
    recent = settings.recent_files()
    assert len(recent) == MAX_RECENT
    assert recent[0] == paths[-3].resolve()
    assert len(set(recent)) == len(recent)


def test_values_survive_a_new_settings_object(tmp_path):
    first = ViewerSettings(settings_in(tmp_path))
    first.set_controls(ControlValues(bpp=0.33, decoder="flow", steps=5, codec="avif"))
    first.set_view_mode("split")
    first.sync()
    second = ViewerSettings(settings_in(tmp_path))
    assert second.controls() == ControlValues(bpp=0.33, decoder="flow", steps=5, codec="avif")
    assert second.view_mode() == "split"


def test_unreadable_values_fall_back_to_defaults(tmp_path):
    store = settings_in(tmp_path)
    store.setValue("controls", "{not json")
    store.setValue("recent", "[1, 2")
    settings = ViewerSettings(store)
    assert settings.controls() == ControlValues()
    assert settings.recent_files() == []


def test_a_realism_set_by_hand_in_an_older_version_stays_in_force(tmp_path, qtbot):
    store = settings_in(tmp_path)
    store.setValue("controls", '{"decoder": "flow", "realism": 0.7}')  # no "realism_auto": an older version
    remembered = ViewerSettings(store).controls()
    assert remembered == ControlValues(decoder="flow", realism=0.7, realism_auto=False)
    panel = ControlPanel(remembered)
    qtbot.addWidget(panel)
    assert not panel.realism_auto.isChecked() and panel.realism.isEnabled()
    assert panel.values().settings().realism == pytest.approx(0.7)
    store.setValue("controls", '{"decoder": "flow", "realism": 0.5}')  # that version's default: Auto takes over
    assert ViewerSettings(store).controls().realism_auto is True
    store.setValue("controls", '{"realism": 0.7, "realism_auto": true}')  # this version's choice is kept
    assert ViewerSettings(store).controls().realism_auto is True
