"""Recipes: parsing and refusals, the chain of phases, and every shipped recipe trained for a few
steps per phase on tiny data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.decoders.post_filter import PostFilter
from engine.decoders.score_decoder import ScoreDecoder
from engine.errors import SettingsError
from engine.testing import TINY_AUTOENCODER, TINY_UNET, write_tiny_weights
from engine.training.recipes import DONE_FILE, Recipe, export_of, run_recipe, start_of
from engine.weights import load_state, read_metadata
from tests.support import photo_like, single_thread  # noqa: F401 (fixture)

RECIPES = Path(__file__).resolve().parents[2] / "assets" / "recipes"
SHIPPED = ("autoencoder", "flow", "diffusion", "postfilter")  # the postfilter starts from a flow phase


def write_recipe(folder: Path, text: str, name: str = "r") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


MINIMAL = '''
stage = "flow"
ships_as = "flow.safetensors"
[architecture]
base = 8
[[phase]]
name = "one"
steps = 2
lr = 1e-4
'''


def test_every_shipped_weights_file_has_a_recipe_that_parses():
    for name in SHIPPED:
        recipe = Recipe.load(RECIPES / f"{name}.toml")
        assert recipe.stage == name and recipe.ships_as == f"{name}.safetensors" and recipe.phases
    flow = Recipe.load(RECIPES / "flow.toml")
    assert [p.name for p in flow.phases[-2:]] == ["realism", "realism-continued"]
    assert all(p.realism is not None for p in flow.phases[-2:])
    assert flow.facts().residual_sigma == 0.0 and Recipe.load(RECIPES / "diffusion.toml").facts().residual_sigma == 0.1


@pytest.mark.parametrize("text, message", [
    (MINIMAL.replace('lr = 1e-4', 'lr = 1e-4\nlearning_rate = 2'), "unknown keys"),
    (MINIMAL.replace('lr = 1e-4', 'lr = 1e-4\nextend = [1, 0]'), "cannot apply to the flow stage"),
    (MINIMAL.replace('stage = "flow"', 'stage = "gan"'), "stage must be one of"),
    (MINIMAL.replace('base = 8', 'width = 8'), "bad architecture"),
    (MINIMAL + '[[phase]]\nname = "one"\nsteps = 1\nlr = 1e-4\n', "distinct names"),
    (MINIMAL + '[start]\nfrom = "hub:somewhere"\n', "start.from must be"),
    (MINIMAL.replace('steps = 2', 'steps = 0'), "must be positive"),
    (MINIMAL.replace('ships_as = "flow.safetensors"', ''), "missing 'ships_as'"),
    ("stage = [", "not valid TOML"),
    (MINIMAL.replace('stage = "flow"', 'stage = "autoencoder"').replace('base = 8', 'n = 16')
     .replace('lr = 1e-4', 'lr = 1e-4\nsynthesis_only = true'), "cannot be the first phase from scratch"),
])
def test_a_bad_recipe_is_refused_with_what_is_wrong(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message):
        Recipe.load(write_recipe(tmp_path, text))


def test_a_phase_starts_from_the_export_of_the_one_before_and_a_recipe_start_names_another_recipes_phase(tmp_path):
    flow = Recipe.load(RECIPES / "flow.toml")
    assert start_of(flow, 0, tmp_path) is None
    assert start_of(flow, 3, tmp_path) == export_of(tmp_path, flow, flow.phases[2]) == tmp_path / "flow" / "rate" / "flow.safetensors"
    post = Recipe.load(RECIPES / "postfilter.toml")
    assert start_of(post, 0, tmp_path) == tmp_path / "flow" / "sigma-by-rate" / "flow.safetensors"
    with pytest.raises(SettingsError, match="has no phase 'nope'; its phases: regression, gpu"):
        flow.phase("nope")


def test_the_command_line_offers_a_handful_of_options_and_refuses_an_unknown_phase(capsys, tmp_path):
    assert main(["train", "--help"]) == 0
    options = [word for word in capsys.readouterr().out.split() if word.startswith("--")]
    assert 6 <= len(set(options)) <= 9
    recipe = write_recipe(tmp_path, MINIMAL)
    assert main(["train", str(recipe), "--phase", "two", "--data", str(tmp_path)]) == 1
    assert "has no phase 'two'" in capsys.readouterr().err


def tiny_photo_folder(folder: Path) -> Path:
    for split, count in (("train", 4), ("val", 2)):
        (folder / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(photo_like(96, 128, seed=i + 10 * (split == "val"))).save(folder / split / f"{i}.png")
    return folder


def tiny_version(recipe: Recipe, weights: Path) -> Recipe:
    """The recipe's phases at 2 steps on 2 × 64² crops, with tiny networks and frozen models."""
    if recipe.stage == "autoencoder":
        architecture = dataclasses.asdict(TINY_AUTOENCODER)
    else:
        architecture = {**TINY_UNET.to_dict(), "residual_sigma": recipe.facts().residual_sigma}
    phases = []
    for phase in recipe.phases:
        realism = dataclasses.replace(phase.realism, discriminator_width=8) if phase.realism else None
        phases.append(dataclasses.replace(phase, steps=2, batch=2, crop=64, warmup=2, time_limit=None,
                                          bf16=False, realism=realism))
    return dataclasses.replace(recipe, architecture=architecture, phases=tuple(phases),
                               autoencoder=str(weights / "autoencoder.safetensors"),
                               post_filter=str(weights / "postfilter.safetensors"))


@pytest.mark.slow
def test_each_shipped_recipe_trains_every_phase_for_a_few_steps_on_tiny_data(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights", post_filter=True)
    photos = tiny_photo_folder(tmp_path / "photos")
    out = tmp_path / "runs"
    for name in SHIPPED:
        recipe = tiny_version(Recipe.load(RECIPES / f"{name}.toml"), weights)
        last = run_recipe(recipe, out, photos=photos, device="cpu", log=lambda _: None)
        for phase in recipe.phases:
            assert (out / name / phase.name / DONE_FILE).exists(), (name, phase.name)
        assert last == export_of(out, recipe, recipe.phases[-1])
        kind, config, extra = read_metadata(last)
        assert kind == name
        if name == "autoencoder":  # the lineage widened the rate range and added a context model
            assert config["levels"] == TINY_AUTOENCODER.levels + 4 and config["context"]
            load_state(last, HyperpriorAutoencoder(TINY_AUTOENCODER.__class__(**config)), "autoencoder")
        elif name == "postfilter":
            facts = PostFilter.load(last).facts  # started from the flow's sixth phase
            assert facts.train_steps == 2 * len(recipe.phases) and facts.init == "flow decoder (12 steps)"
        else:
            decoder = ScoreDecoder.load(last)
            assert decoder.facts.objective == "realism" and decoder.facts.on_post_filtered
            assert decoder.net.config.rate_conditioning
            assert decoder.facts.train_steps == 2 * len(recipe.phases)
            if name == "flow":
                assert decoder.facts.flow_sigma.varies
    # a second run finds every phase done and trains nothing
    messages = []
    flow = tiny_version(Recipe.load(RECIPES / "flow.toml"), weights)
    run_recipe(flow, out, photos=photos, device="cpu", log=messages.append)
    assert all(m.endswith("done earlier, skipped") for m in messages) and len(messages) == len(flow.phases)
    assert json.loads((out / "flow" / "realism-continued" / DONE_FILE).read_text())["export"] == "flow.safetensors"


def test_from_starts_the_first_phase_that_runs_even_after_finished_ones(tmp_path, monkeypatch):
    recipe = Recipe.load(write_recipe(tmp_path, MINIMAL + '[[phase]]\nname = "two"\nsteps = 2\nlr = 1e-4\n'))
    out = tmp_path / "runs"
    (out / "r" / "one").mkdir(parents=True)
    (out / "r" / "one" / DONE_FILE).write_text("{}")
    starts = []
    monkeypatch.setattr("engine.training.recipes.run_phase",
                        lambda recipe, phase, start, *a, **k: starts.append((phase.name, start)) or tmp_path)
    run_recipe(recipe, out, photos=tmp_path, start=tmp_path / "given.safetensors", log=lambda _: None)
    assert starts == [("two", tmp_path / "given.safetensors")]
