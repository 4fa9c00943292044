import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.data.photos import is_validation, split_photos
from engine.decoders.flow import StartNoise
from engine.decoders.score_decoder import ScoreDecoder
from engine.decoders.unet import ConditionalUNet
from engine.errors import SettingsError
from engine.testing import TINY_AUTOENCODER, TINY_UNET, write_tiny_weights
from engine.training.autoencoder import train_autoencoder, validate
from engine.training.decoders import train_decoder
from engine.training.loop import TrainConfig, Trainer, data_seed
from engine.weights import load_state, read_metadata
from tests.support import matches, tiny_photos, tiny_train_config


def test_autoencoder_training_exports_validates_and_resumes(tmp_path):
    path = train_autoencoder(tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path, 2), TINY_AUTOENCODER)
    kind, config, extra = read_metadata(path)
    assert kind == "autoencoder" and config["m"] == TINY_AUTOENCODER.m
    assert extra["steps"] == 2 and "bpp@0" in extra["validation"] and "psnr@1" in extra["validation"]
    load_state(path, HyperpriorAutoencoder(TINY_AUTOENCODER), "autoencoder")  # exactly its own keys
    train_autoencoder(tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path, 4), TINY_AUTOENCODER)
    steps = [json.loads(line)["step"] for line in (tmp_path / "train.log").read_text().splitlines()]
    assert steps[-1] == 4 and 1 in steps and 3 in steps  # the second run continued at step 3
    assert read_metadata(path)[2]["steps"] == 4


def test_time_limit_stops_early_anneals_and_exports(tmp_path):
    config = TrainConfig(out_dir=tmp_path, steps=10_000, batch=2, crop=64, warmup=1, log_every=1,
                         checkpoint_every=10_000, bf16=False, device="cpu", time_limit=1.5)
    path = train_autoencoder(tiny_photos(), tiny_photos(1), config, TINY_AUTOENCODER)
    steps = read_metadata(path)[2]["steps"]
    assert 1 <= steps < 10_000  # stopped by the clock, and the stopping step was exported
    log = [json.loads(line) for line in (tmp_path / "train.log").read_text().splitlines()]
    lrs = [r["lr"] for r in log if "lr" in r]
    assert lrs[-1] < 0.5 * config.lr  # the schedule followed the clock, not the 10 000 planned steps
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == steps


def test_each_rank_and_each_resume_draws_its_own_crops():
    seeds = {data_seed(7, rank, step) for rank in range(4) for step in (0, 1, 250)}
    assert len(seeds) == 12  # seed + rank + step would give rank 1 at step 0 rank 0's crops at step 1
    assert data_seed(7, 0, 0) == data_seed(7, 0, 0) != data_seed(8, 0, 0)


def test_a_resumed_run_does_not_replay_the_crops_it_began_with(tmp_path):
    """The trainer seeds the crop stream from (seed, rank, step): a run resumed at step 2 draws the
    stream for step 2, not the one the run started with."""
    drawn = []

    def make_batches(seed):
        drawn.append(seed)
        return tiny_photos().crops(8, 2, seed)

    def loss_fn(net, x):
        return ((net(x) - x) ** 2).mean(), {}

    config = TrainConfig(out_dir=tmp_path, steps=2, batch=2, crop=8, warmup=1, checkpoint_every=2,
                         bf16=False, device="cpu", seed=3)
    Trainer(torch.nn.Conv2d(3, 3, 1), loss_fn, make_batches, config).run()
    Trainer(torch.nn.Conv2d(3, 3, 1), loss_fn, make_batches, TrainConfig(**{**config.__dict__, "steps": 4})).run()
    assert drawn == [data_seed(3, 0, 0), data_seed(3, 0, 2)]
    first, resumed = (next(tiny_photos().crops(8, 2, seed)) for seed in drawn)
    assert not torch.equal(first, resumed)


def test_lambda_range_replaces_the_init_models_range(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    path = train_autoencoder(tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "ae", 1),
                             init=weights / "autoencoder.safetensors", lambda_range=(1e-4, 0.08))
    config = read_metadata(path)[1]
    assert (config["lambda_min"], config["lambda_max"]) == (1e-4, 0.08) and config["m"] == TINY_AUTOENCODER.m


def test_validate_reports_real_bpp_for_every_rate():
    torch.manual_seed(0)
    metrics = validate(HyperpriorAutoencoder(TINY_AUTOENCODER), [np.full((70, 90, 3), 128, np.uint8)], crop=64)
    assert set(metrics) == {f"{k}@{r:g}" for k in ("bpp", "psnr") for r in (0, 0.25, 0.5, 0.75, 1)}
    assert all(v > 0 for v in metrics.values())


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_decoder_training_exports_loadable_weights(tmp_path, kind):
    weights = write_tiny_weights(tmp_path / "w", decoders=False)
    path = train_decoder(kind, weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                         tiny_train_config(tmp_path / "run", 2), TINY_UNET)
    decoder = ScoreDecoder.load(path)
    assert decoder.kind == kind and decoder.facts.train_steps == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert any("val_loss" in r.get("validation", {}) for r in log)


def test_split_is_by_photo_and_stable(tmp_path):
    for i in range(40):
        (tmp_path / f"p{i}.png").write_bytes(b"")
    train, val = split_photos(tmp_path)
    assert not {p.name for p in train} & {p.name for p in val}
    assert len(train) + len(val) == 40 and [is_validation(p) for p in val] == [True] * len(val)


@pytest.mark.parametrize("with_val", [False, True])
def test_split_never_reads_the_held_out_test_folder(tmp_path, with_val):
    for split, count in (("train", 30), ("test", 5)) + ((("val", 3),) if with_val else ()):
        (tmp_path / split).mkdir()
        for i in range(count):
            (tmp_path / split / f"{split}{i}.png").write_bytes(b"")
    train, val = split_photos(tmp_path)
    assert {p.parent.name for p in train + val} == ({"train", "val"} if with_val else {"train"})
    assert len(train) + len(val) == (33 if with_val else 30)


def test_crops_are_in_range_and_sized():
    batch = next(tiny_photos().crops(64, 4, seed=1))
    assert batch.shape == (4, 3, 64, 64) and 0 <= float(batch.min()) and float(batch.max()) <= 1


def test_init_continues_from_shipped_weights(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    path = train_autoencoder(tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "ae", 1),
                             init=weights / "autoencoder.safetensors")
    assert read_metadata(path)[1]["m"] == TINY_AUTOENCODER.m  # the init file's architecture was used
    flow = train_decoder("flow", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                         tiny_train_config(tmp_path / "flow", 1), init=weights / "flow.safetensors")
    assert ScoreDecoder.load(flow).net.config == ScoreDecoder.load(weights / "flow.safetensors").net.config
    assert ScoreDecoder.load(flow).facts.train_steps == 1  # tiny weights had 0 steps; one more here
    # The parameterisation travels with the weights: continuing keeps the init file's prior.
    assert ScoreDecoder.load(flow).facts.residual_sigma == ScoreDecoder.load(weights / "flow.safetensors").facts.residual_sigma
    assert read_metadata(path)[2]["steps"] == 1


def test_condition_on_rate_extends_an_init_decoder_and_trains_its_rate_embedding(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    init = ScoreDecoder(ConditionalUNet(TINY_UNET), "diffusion")  # without rate conditioning
    for p in init.net.parameters():  # as if trained: gradients reach every layer from the first step
        if p.ndim > 1 and torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.05)
    init.save(weights / "diffusion.safetensors")
    path = train_decoder("diffusion", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1),
                         tiny_train_config(tmp_path / "run", 2), init=weights / "diffusion.safetensors", condition_on_rate=True)
    decoder = ScoreDecoder.load(path)
    assert decoder.needs_rate and decoder.facts.train_steps == 2
    assert decoder.net.config.base == TINY_UNET.base  # the init file's architecture, plus the rate
    # It starts at zero; a nonzero gradient (the loss passes each pair's rate) has moved it.
    assert torch.count_nonzero(decoder.net.rate_embedding.mlp[-1].weight) > 0
    # Resuming the run folder (its checkpoint is rate-conditioned too) needs no flag.
    config = tiny_train_config(tmp_path / "run", 4)
    resumed = train_decoder("diffusion", weights / "autoencoder.safetensors", tiny_photos(), tiny_photos(1), config,
                            init=weights / "diffusion.safetensors", condition_on_rate=True)
    assert ScoreDecoder.load(resumed).facts.train_steps == 4


def test_flow_sigma_moves_an_init_flow_and_a_resume_must_keep_it(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    small = StartNoise.constant(0.1)
    assert ScoreDecoder.load(weights / "flow.safetensors").facts.flow_sigma != small
    ae, init = weights / "autoencoder.safetensors", weights / "flow.safetensors"
    path = train_decoder("flow", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "run", 2), init=init, flow_sigma=small)
    assert ScoreDecoder.load(path).facts.flow_sigma == small  # the sampler will start at this σ
    # Resuming with the init file's σ would train the later steps on another loss: refused, with what changed.
    with pytest.raises(SettingsError, match=r"flow_sigma 0.1 → 0.25.*options it started with"):
        train_decoder("flow", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "run", 4), init=init)
    resumed = train_decoder("flow", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "run", 4), init=init,
                            flow_sigma=small)
    assert ScoreDecoder.load(resumed).facts.train_steps == 4
    with pytest.raises(SettingsError, match="for the flow decoder"):
        train_decoder("diffusion", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "d", 2), flow_sigma=small)


def test_a_start_noise_that_falls_with_the_rate_is_stored_and_needs_rate_conditioning(tmp_path):
    ae = write_tiny_weights(tmp_path / "w") / "autoencoder.safetensors"
    falling = StartNoise(0.25, 0.04)
    assert not TINY_UNET.rate_conditioning
    with pytest.raises(SettingsError, match="needs a rate-conditioned network"):
        train_decoder("flow", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "plain", 2), TINY_UNET, flow_sigma=falling)
    path = train_decoder("flow", ae, tiny_photos(), tiny_photos(1), tiny_train_config(tmp_path / "run", 2), TINY_UNET,
                         flow_sigma=falling, condition_on_rate=True)
    trained = ScoreDecoder.load(path)
    assert trained.facts.flow_sigma == falling and trained.needs_rate


@pytest.mark.slow
def test_two_process_ddp_run_under_torchrun_trains_and_exports(tmp_path):
    """The README's multi-GPU recipe, on the CPU: torchrun with two gloo ranks (with a time
    limit, so the ranks also agree on the time spent every step)."""
    import subprocess
    import sys

    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (160, 192, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    weights = write_tiny_weights(tmp_path / "w")
    recipe = tmp_path / "tiny-flow.toml"
    recipe.write_text(f"""stage = "flow"
ships_as = "flow.safetensors"
[architecture]
base = 8
mults = [1, 2]
blocks = 1
groups = 4
level_dim = 16
[start]
autoencoder = "{weights / 'autoencoder.safetensors'}"
[[phase]]
name = "only"
steps = 2
lr = 1e-4
batch = 1
crop = 64
bf16 = false
""")
    out = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "engine.cli", "train", str(recipe), "--data", str(photos), "--device", "cpu", "--threads", "1",
         "--time-limit", "600", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("weights:") == 2  # both ranks ran to the end
    run = out / "tiny-flow" / "only"
    assert ScoreDecoder.load(run / "flow.safetensors").facts.train_steps == 2
    assert [json.loads(line)["step"] for line in (run / "train.log").read_text().splitlines()] == [2]


def _continue_tiny_autoencoder(tmp_path, lr: float, **options) -> tuple[HyperpriorAutoencoder, Path, TrainConfig]:
    """Train 3 steps from tiny weights with ``options``: (the initial model, the export, the config)."""
    weights = write_tiny_weights(tmp_path / "w")
    init = HyperpriorAutoencoder(TINY_AUTOENCODER)
    load_state(weights / "autoencoder.safetensors", init, "autoencoder")
    config = TrainConfig(out_dir=tmp_path / "ae", steps=3, batch=2, crop=64, warmup=1, lr=lr, log_every=1,
                         checkpoint_every=3, bf16=False, device="cpu")
    return init, train_autoencoder(tiny_photos(), tiny_photos(1), config, init=weights / "autoencoder.safetensors",
                                   **options), config


def test_extend_trains_only_the_new_outer_gain_levels(tmp_path):
    init, path, config = _continue_tiny_autoencoder(tmp_path, 0.1, extend=(1, 1))
    levels = TINY_AUTOENCODER.levels
    assert read_metadata(path)[1]["levels"] == levels + 2
    trained = HyperpriorAutoencoder(init.extended(1, 1).config)
    load_state(path, trained, "autoencoder")
    before, after, start = init.state_dict(), trained.state_dict(), init.extended(1, 1).state_dict()
    for name, value in before.items():
        value = value.bfloat16().float() if value.is_floating_point() else value  # as exported
        if name.startswith("log_") and "gain" in name:
            torch.testing.assert_close(after[name][1:levels + 1], value)  # the old rows stayed
        elif not name.endswith(".table"):  # coding tables are rebuilt from the densities on load
            torch.testing.assert_close(after[name], value)
    for row in (0, -1):  # both new levels trained
        assert not torch.equal(after["log_gain"][row], start["log_gain"][row].bfloat16().float())
    with pytest.raises(SettingsError, match="needs init weights"):
        train_autoencoder(tiny_photos(), tiny_photos(1), config, extend=(1, 0))


def test_synthesis_only_changes_the_reconstruction_but_not_one_byte_of_any_file(tmp_path):
    init, path, config = _continue_tiny_autoencoder(tmp_path, 0.01, synthesis_only=True)
    tuned = HyperpriorAutoencoder(TINY_AUTOENCODER)
    load_state(path, tuned, "autoencoder")
    before, after = init.state_dict(), tuned.state_dict()
    decoder_side = [name for name in before if name.startswith("g_s.") or name == "log_inv_gain"]
    assert all(not torch.equal(before[name], after[name]) for name in decoder_side if name.endswith("weight"))
    # Coding tables are rebuilt from the (frozen) densities on load, hence left out here.
    assert all(torch.equal(before[name], after[name]) for name in before
               if name not in decoder_side and not name.endswith(".table"))
    init.update_tables()
    tuned.update_tables()
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        for rate in (0.0, 0.5, 1.0):
            old, new = (m.code_latents(m.analyze(x), rate, (64, 128)) for m in (init, tuned))
            assert old.segments == new.segments and old.symbols_crc == new.symbols_crc
        y_hat = tuned.decode_latents(new.segments, 1.0, (64, 128))
        assert not torch.equal(tuned.synthesize(y_hat), init.synthesize(y_hat))
    with pytest.raises(SettingsError, match="fine-tuning the synthesis needs init weights"):
        train_autoencoder(tiny_photos(), tiny_photos(1), config, synthesis_only=True)


def test_add_context_trains_the_context_model_jointly_with_the_transforms(tmp_path):
    weights = write_tiny_weights(tmp_path / "w")
    init = HyperpriorAutoencoder(TINY_AUTOENCODER)
    load_state(weights / "autoencoder.safetensors", init, "autoencoder")
    config = TrainConfig(out_dir=tmp_path / "ae", steps=3, batch=2, crop=64, warmup=1, lr=0.01, log_every=1,
                         checkpoint_every=3, bf16=False, device="cpu")
    path = train_autoencoder(tiny_photos(), tiny_photos(1), config, init=weights / "autoencoder.safetensors",
                             add_context=True)
    assert read_metadata(path)[1]["context"] is True
    trained = init.with_context()
    load_state(path, trained, "autoencoder")
    before, after = init.state_dict(), trained.state_dict()
    assert after["context.fuse.4.weight"].abs().sum() > 0  # started at zero, trained
    for name in ("g_a.0.weight", "g_s.0.weight", "h_s.0.weight"):
        assert not torch.equal(after[name], before[name].bfloat16().float())
    trained.update_tables()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # the exported weights code and decode with the context model
        latents = trained.code_latents(trained.analyze(x), 0.5, (64, 64))
        assert len(latents.segments) == 3
        assert trained.synthesize(trained.decode_latents(latents.segments, 0.5, (64, 64), matches(latents.symbols_crc))).shape == x.shape
    with pytest.raises(SettingsError, match="adding a context model needs init weights"):
        train_autoencoder(tiny_photos(), tiny_photos(1), config, add_context=True)
