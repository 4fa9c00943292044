import csv
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from engine.api import DecodeSettings, Encoded, ModelInfo
from engine.cli import main
from engine.decoders.realism_schedule import RealismSchedule
from engine.errors import HfdError, SettingsError
from engine.evaluation import metrics
from engine.evaluation import report as eval_report
from engine.evaluation import run as ev
from engine.evaluation import summary as eval_summary
from engine.testing import write_tiny_weights
from tests.support import photo_like, single_thread  # noqa: F401 (autouse fixture)

H, W = 48, 64


@pytest.fixture(autouse=True)
def cheap_metrics(monkeypatch):
    """The deep metrics are tested in test_metrics; here only their plumbing matters (and the
    eval extra may be absent), so they are replaced by a mean absolute difference."""
    def difference(a, b, **_):
        return float(np.abs(a.astype(float) - b).mean() / 255)

    monkeypatch.setattr(metrics, "ms_ssim", lambda a, b: 1 - difference(a, b))
    monkeypatch.setattr(metrics, "st_lpips", difference)
    monkeypatch.setattr(metrics, "ssimulacra2", lambda a, b: 100 * (1 - difference(a, b)))


class FakeEngine:
    """Files of the requested size; the "autoencoder" blurs, the "decoders" add seeded texture."""

    def __init__(self, lowest_bpp=0.0):
        self.lowest_bpp, self.encodes, self._images = lowest_bpp, 0, {}
        self.info = ModelInfo(model_id="fake", weights_hash="0123456789abcdef", rate_range=(0.0, 1.0),
                              bpp_range=(0.05, 1.0), decoders=("ae", "diffusion", "flow"),
                              shift_ranges={"diffusion": (0.0, 2.0), "flow": (-1.0, 1.0)},
                              defaults={"diffusion": DecodeSettings("diffusion", steps=16),
                                        "flow": DecodeSettings("flow", steps=4, noise=1.0, realism=None)},
                              realism={"flow": RealismSchedule(((0.1, 1.0), (0.4, 0.5)))})

    def encode(self, rgb, *, bpp, optimise_steps=0):
        self.optimise_steps = optimise_steps
        if bpp < self.lowest_bpp:
            raise SettingsError(f"{bpp:g} bpp is below the lowest rate of this model for this image")
        self.encodes += 1
        h, w = rgb.shape[:2]
        data = len(self._images).to_bytes(4, "big") + bytes(max(0, int(bpp * h * w / 8) - 4))
        blur = rgb.astype(float)
        for axis in (0, 1):
            blur = (np.roll(blur, 1, axis) + blur + np.roll(blur, -1, axis)) / 3
        self._images[data] = blur.round().astype(np.uint8)
        return Encoded(data, w, h, rate=bpp)

    def decode_ae(self, data, *, post_filter=True):  # no post-filter: the same image either way
        return self._images[data].copy()

    def refine(self, x_ae, settings, *, rate):  # rate required: the evaluation must pass the file's
        assert 0.0 <= rate
        settings = self.info.resolve(settings, min(rate, 1.0))
        if settings.decoder == "ae":  # as Engine.refine: the autoencoder image itself
            return x_ae.copy()
        rng = np.random.default_rng(settings.steps * 1000 + int(settings.noise * 100) + int(settings.shift * 10))
        refined = np.clip(x_ae + rng.normal(0, 6, x_ae.shape), 0, 255)
        return (settings.realism * refined + (1 - settings.realism) * x_ae).round().astype(np.uint8)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo_like(H, W, seed=i)).save(folder / f"img{i}.png")
    return folder


def config(images, out, **overrides):
    settings = dict(images=images, out=out, bpps=(0.5, 1.0), decoders="ae,diffusion:8,flow", baselines="jpeg,webp",
                    fid=False, progress=False, crop_images=1, plots=False)
    settings.update(overrides)
    return ev.EvalConfig(**settings)


def read_rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_methods_are_parsed_from_the_flags():
    info = FakeEngine().info
    assert [m.name for m in ev.learned_methods("ae,diffusion:8,flow", info)] == ["ae", "diffusion:8", "flow:4"]
    assert [m.name for m in ev.learned_methods(None, info)] == ["ae", "diffusion:16", "flow:4"]
    with pytest.raises(SettingsError, match="unknown decoder 'gan'"):
        ev.learned_methods("gan", info)
    with pytest.raises(SettingsError, match="positive integer"):
        ev.learned_methods("flow:x", info)
    with pytest.raises(SettingsError, match="unknown baseline 'bpg'"):
        ev.classical_methods("jpeg,bpg")
    assert [(m.name, m.codec, m.size_factor) for m in ev.classical_methods("avif, avif@2x,webp@1.5")] == [
        ("avif", "avif", 1.0), ("avif@2x", "avif", 2.0), ("webp@1.5", "webp", 1.5)]
    with pytest.raises(SettingsError, match="size factor must be a positive number"):
        ev.classical_methods("avif@twice")


def test_a_classical_codec_at_twice_the_bytes_is_measured_but_kept_out_of_the_bd_rates(images, tmp_path):
    out = tmp_path / "out"
    summary = ev.Evaluation(FakeEngine(), config(images, out, decoders="ae", baselines="jpeg,jpeg@2x")).run()
    rows = read_rows(out / "rows.csv")
    for image in ("img0.png", "img1.png"):
        single, double = (int(next(r["bytes"] for r in rows if r["image"] == image and r["method"] == name
                                   and r["target_bpp"] == "1.0")) for name in ("jpeg", "jpeg@2x"))
        assert single < double <= 2 * int(1.0 * H * W / 8)
    assert list(summary["bd_rate"]["psnr"]) == ["jpeg"]
    assert all(-3 < float(r["top_octave"]) < 3 for r in rows)  # the fine-detail energy of every row
    assert "| top octave |" in (out / "report.md").read_text()


def test_run_writes_rows_summary_report_and_crops(images, tmp_path):
    out = tmp_path / "out"
    summary = ev.Evaluation(FakeEngine(), config(images, out)).run()
    rows = read_rows(out / "rows.csv")
    assert len(rows) == 2 * 2 * 5  # images × bitrates × (3 learned + 2 classical)
    ae = [r for r in rows if r["method"] == "ae" and r["target_bpp"] == "1.0"]
    assert all(int(r["bytes"]) == int(1.0 * H * W / 8) for r in ae)
    for row in rows:  # classical files never exceed the .hfd file unless flagged
        learned_bytes = next(int(r["bytes"]) for r in rows
                             if r["method"] == "ae" and r["image"] == row["image"] and r["target_bpp"] == row["target_bpp"])
        assert int(row["bytes"]) <= learned_bytes or row["over_target"] == "True"
        assert float(row["psnr"]) > 10 and 0 < float(row["ms_ssim"]) <= 1
    assert json.loads((out / "summary.json").read_text())["points"] == json.loads(json.dumps(summary["points"]))
    report = (out / "report.md").read_text()
    assert "## Target 0.5 bpp" in report and "| diffusion:8 |" in report and "BD-rate" in report
    assert ("Decode settings: diffusion:8: steps 8, shift 0, noise 0, seed 0, realism 1; "
            "flow:4: steps 4, shift 0, noise 1, seed 0, realism 1 up to rate 0.1, 0.5 from rate 0.4 (linear between), "
            "solver euler.") in report
    assert "## Refined decodes against the autoencoder-only decode" in report  # without FID: Δ PSNR, Δ ST-LPIPS
    assert [(v["method"], v["target_bpp"], "fid" in v) for v in summary["versus_ae"]] == [
        ("diffusion:8", 0.5, False), ("diffusion:8", 1.0, False), ("flow:4", 0.5, False), ("flow:4", 1.0, False)]
    assert sorted(p.name for p in (out / "crops" / "img0").iterdir())[:2] == ["0.5bpp_ae.png", "0.5bpp_diffusion-8.png"]
    assert not (out / "crops" / "img1").exists()


def test_curve_plots_draw_the_metrics_that_have_data(tmp_path):
    pytest.importorskip("matplotlib")
    points = [{"method": m, "bpp": b, "psnr": 20 + 10 * b + (m == "ae")} for m in ("ae", "jpeg") for b in (0.1, 0.4)]
    written = eval_report.curve_plots({"points": points}, tmp_path)
    assert written == [("plot_psnr.png", "PSNR (dB) against bpp (higher is better)")]
    assert Image.open(tmp_path / "plot_psnr.png").size == (660, 440)


def test_an_interrupted_run_resumes_without_redoing_rows(images, tmp_path):
    out = tmp_path / "out"
    first = FakeEngine()
    ev.Evaluation(first, config(images, out)).run()
    lines = (out / "rows.csv").read_text().splitlines(keepends=True)
    (out / "rows.csv").write_text("".join(lines[:7]))  # header + 6 rows: as if stopped mid-way

    second = FakeEngine()
    ev.Evaluation(second, config(images, out)).run()
    rows = read_rows(out / "rows.csv")
    assert len(rows) == 20
    assert len({(r["image"], r["target_bpp"], r["method"]) for r in rows}) == 20
    assert second.encodes == 1 + 3  # a warm-up, then the 3 points with missing rows

    third = FakeEngine()
    ev.Evaluation(third, config(images, out)).run()
    assert third.encodes == 0 and len(read_rows(out / "rows.csv")) == 20


def test_bitrates_below_the_model_are_noted_not_measured(images, tmp_path):
    out = tmp_path / "out"
    summary = ev.Evaluation(FakeEngine(lowest_bpp=0.8), config(images, out)).run()
    rows = read_rows(out / "rows.csv")
    noted = [r for r in rows if r["note"]]
    assert {r["method"] for r in noted} == {"ae", "diffusion:8", "flow:4"} and len(noted) == 6
    assert all("below the lowest rate" in r["note"] and r["psnr"] == "" for r in noted)
    jpeg_low = next(p for p in summary["points"] if p["method"] == "jpeg" and p["target_bpp"] == 0.5)
    assert jpeg_low["n_images"] == 2  # baselines still run, at the target size
    ae_low = next(p for p in summary["points"] if p["method"] == "ae" and p["target_bpp"] == 0.5)
    assert ae_low["n_skipped"] == 2 and ae_low["psnr"] is None


def test_steps_sweep(images, tmp_path):
    out = tmp_path / "out"
    cfg = config(images, out, bpps=(1.0,), baselines="jpeg", sweep="steps", sweep_values=(1, 4))
    summary = ev.Evaluation(FakeEngine(), cfg).run()
    rows = read_rows(out / "sweep.csv")
    assert len(rows) == 2 * 2 * 2  # images × values × refining decoders
    sweep = summary["sweep"]
    assert sweep["parameter"] == "steps" and sweep["bpp"] == 1.0
    assert [(p["method"], p["value"]) for p in sweep["points"]] == [("diffusion", 1.0), ("diffusion", 4.0),
                                                                    ("flow", 1.0), ("flow", 4.0)]
    assert "## Sweep of steps at 1 bpp" in (out / "report.md").read_text()
    # the same folder swept at another of its bitrates decodes that bitrate (it resumes per bitrate)
    summary = ev.Evaluation(FakeEngine(), dataclasses.replace(cfg, bpps=(0.5, 1.0), sweep_bpp=0.5)).run()
    assert len(read_rows(out / "sweep.csv")) == 2 * (2 * 2 * 2)
    assert summary["sweep"]["bpp"] == 0.5 and all(p["n_images"] == 2 for p in summary["sweep"]["points"])
    assert "## Sweep of steps at 0.5 bpp" in (out / "report.md").read_text()


def test_realism_sweep_runs_from_the_autoencoder_image_to_the_refined_one(images, tmp_path):
    out = tmp_path / "sweep"
    summary = ev.Evaluation(FakeEngine(), config(images, out, bpps=(1.0,), decoders="ae,flow", baselines="jpeg",
                                                 sweep="realism", sweep_values=(0, 0.5, 1))).run()
    points = {p["value"]: p for p in summary["sweep"]["points"]}
    main = {p["method"]: p for p in summary["points"]}
    assert points[0.0]["psnr"] == pytest.approx(main["ae"]["psnr"])  # realism 0 is the autoencoder image
    # the flow's default realism follows the rate: 0.5 at the sweep's (the fake codes 1 bpp at rate 1)
    assert points[0.5]["psnr"] == pytest.approx(main["flow:4"]["psnr"])
    assert points[1.0]["psnr"] < points[0.5]["psnr"] < main["ae"]["psnr"]  # the fake adds noise


def test_shift_sweep_covers_each_decoders_own_range(images, tmp_path):
    cfg = config(images, tmp_path / "out", decoders="ae", sweep="shift")
    with pytest.raises(SettingsError, match="shift sweep needs a refining decoder"):
        ev.Evaluation(FakeEngine(), cfg)  # refused before any work
    cfg = config(images, tmp_path / "out", sweep="shift")
    parameter, bpp, plan = ev.Evaluation(FakeEngine(), cfg).sweep_plan()
    assert bpp == 1.0
    assert [(m.settings.decoder, v) for m, v in plan] == [("diffusion", v) for v in (0.0, 0.5, 1.0, 1.5, 2.0)] + \
        [("flow", v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    cfg = config(images, tmp_path / "out", decoders="ae,flow", sweep="shift", sweep_values=(2.0,))
    assert [v for _, v in ev.Evaluation(FakeEngine(), cfg).sweep_plan()[2]] == [2.0]


@pytest.mark.parametrize("dims", [64, 6])
def test_fid_per_method_from_stored_patch_features(images, tmp_path, monkeypatch, dims):
    def cheap_features(patches, device="cpu", batch=16):  # instead of Inception: an 8×8-pooled grey
        grey = [p.astype(float).mean(2).reshape(8, len(p) // 8, 8, -1).mean((1, 3)).ravel()[:dims] for p in patches]
        return np.array(grey).reshape(-1, dims)

    monkeypatch.setattr(metrics, "inception_features", cheap_features)
    out = tmp_path / "out"
    summary = ev.Evaluation(FakeEngine(), config(images, out, fid=True, patch=16, bpps=(1.0,))).run()
    rows = read_rows(out / "rows.csv")
    points = {p["method"]: p for p in summary["points"]}
    assert all(p["n_patches"] == 2 * (12 + 6) for p in points.values())  # 3×4 grid + 2×3 shifted grid
    assert all(p["fid"] is not None and p["fid"] >= 0 for p in points.values())
    assert (out / "features" / "original" / "img0.png.npy").is_file()
    # each refined decode against the autoencoder-only one, with paired intervals over the 2 images
    versus = {v["method"]: v for v in summary["versus_ae"]}
    assert sorted(versus) == ["diffusion:8", "flow:4"] and all(v["target_bpp"] == 1.0 for v in versus.values())
    for v in versus.values():
        ae, refined = points["ae"], points[v["method"]]
        assert v["fid"]["diff"] == pytest.approx(refined["fid"] - ae["fid"])
        assert v["kid"]["diff"] == pytest.approx(refined["kid"] - ae["kid"])
        assert v["psnr"]["diff"] == pytest.approx(refined["psnr"] - ae["psnr"])
        assert all(v[k]["low"] <= v[k]["high"] for k in ("psnr", "st_lpips"))
        if dims == 64:  # a bootstrap resample's 36 patches fit the Gram path
            assert all(v[k]["low"] <= v[k]["high"] for k in ("fid", "kid"))
        else:  # more patches than feature dimensions: the difference, without an interval
            assert v["fid"]["low"] is None and v["kid"]["high"] is None
        # two images: a resampled mean is one image's difference or their average, so the 95 %
        # interval runs from the smaller per-image difference to the larger
        per_image = [float(r["psnr"]) - float(a["psnr"]) for r, a in zip(
            sorted((r for r in rows if r["method"] == v["method"]), key=lambda r: r["image"]),
            sorted((r for r in rows if r["method"] == "ae"), key=lambda r: r["image"]))]
        assert (v["psnr"]["low"], v["psnr"]["high"]) == pytest.approx((min(per_image), max(per_image)))


def test_report_shows_differences_with_intervals_and_marks_the_clear_ones(tmp_path):
    entry = {"method": "flow:4", "target_bpp": 0.4, "n_images": 12,
             "psnr": {"diff": -1.09, "low": -1.3, "high": -0.9},
             "st_lpips": {"diff": -0.0006, "low": -0.0107, "high": 0.0099},
             "fid": {"diff": 11.2, "low": -4.1, "high": 26.4}, "kid": {"diff": -0.003, "low": None, "high": None}}
    summary = {"model": {"model_id": "m", "weights_hash": "0" * 16, "decoders": ["ae", "flow"]}, "images": ["a"],
               "bpps": [0.4], "patches": {"size": 256, "stride": None}, "points": [], "versus_ae": [entry]}
    report = eval_report.write_report(summary, tmp_path, plots=False).read_text()
    assert "## Refined decodes against the autoencoder-only decode" in report and "post-filter" not in report
    row = next(line for line in report.splitlines() if line.startswith("| flow:4 |"))
    assert row == ("| flow:4 | 0.4 | 12 | _-1.09 [-1.30, -0.90]_ | -0.0006 [-0.0107, +0.0099] | "
                   "+11.2 [-4.1, +26.4] | -0.0030 |")
    entry["st_lpips"] = {"diff": -0.02, "low": -0.04, "high": -0.002}
    summary["model"]["post_filter_hash"] = "ab" * 8
    report = eval_report.write_report(summary, tmp_path, plots=False).read_text()
    assert "| **-0.0200 [-0.0400, -0.0020]** |" in report
    assert ("(`ae`) is post-filtered (post-filter abababababab); the decoders refine the unfiltered one; "
            "at realism below 1 they blend toward the post-filtered decode.") in report
    summary["model"]["decoder_conditions"] = {"diffusion": "decoded", "flow": "post_filtered"}
    report = eval_report.write_report(summary, tmp_path, plots=False).read_text()
    assert "flow refines it; diffusion refines the unfiltered one; at realism below 1" in report


def test_cli_eval_with_tiny_weights(images, tmp_path, capsys):
    weights = write_tiny_weights(tmp_path / "weights", decoders=False)
    out = tmp_path / "cli"
    code = main(["eval", "--images", str(images), "--out", str(out), "--bpp", "1,4", "--limit", "1",
                 "--baselines", "jpeg", "--no-fid", "--no-plots", "--threads", "1", "--device", "cpu", "--weights", str(weights)])
    assert code == 0, capsys.readouterr().err
    assert "report:" in capsys.readouterr().out
    rows = read_rows(out / "rows.csv")
    assert {r["method"] for r in rows} == {"ae", "jpeg"} and {r["image"] for r in rows} == {"img0.png"}


def test_bd_rates_compare_the_autoencoder_against_each_baseline():
    def rows(method, scale, image="a", offset=0.0, skip_lowest=False):
        curve = [(0.1, 27.0), (0.2, 29.5), (0.4, 32.0), (0.8, 34.0)]
        return [{"image": image, "method": method, "bpp": str(scale * b), "psnr": str(q + offset),
                 "ms_ssim": str(1 - 10 ** (-(q + offset) / 20)), "note": "below the lowest rate" if skip_lowest and b == 0.1 else ""}
                for b, q in curve]

    def bd_rates(rows, reference, others):
        return eval_summary.mean_bd_rates(eval_summary.bd_rates_per_image(rows, reference, others))

    table = bd_rates(rows("ae", 0.5) + rows("jpeg", 1.0) + rows("webp", 0.25), "ae", ["jpeg", "webp"])
    assert table["psnr"]["jpeg"] == pytest.approx(-50.0) and table["ms_ssim_db"]["webp"] == pytest.approx(100.0)
    # Per image, then averaged: a second image with another quality level and a skipped lowest
    # point (a quadratic fit instead of a cubic: 0.1 % off) changes nothing when its rate ratio is the same.
    both = (rows("ae", 0.5) + rows("ae", 0.5, "b", 5.0, skip_lowest=True)
            + rows("jpeg", 1.0) + rows("jpeg", 1.0, "b", 5.0))
    assert bd_rates(both, "ae", ["jpeg"])["psnr"]["jpeg"] == pytest.approx(-50.0, abs=0.1)
    assert eval_summary.ms_ssim_db(0.99) == pytest.approx(20.0) and eval_summary.ms_ssim_db(1.0) is None
    # The per-image values behind the mean; an image without the other method's curve is left out.
    mixed = rows("ae", 0.5) + rows("ae", 2.0, "b") + rows("jpeg", 1.0) + rows("jpeg", 1.0, "b") + rows("ae", 1.0, "c")
    per_image = eval_summary.bd_rates_per_image(mixed, "ae", ["jpeg"])["psnr"]["jpeg"]
    assert per_image == pytest.approx({"a": -50.0, "b": 100.0})
    assert bd_rates(mixed, "ae", ["jpeg"])["psnr"]["jpeg"] == pytest.approx(25.0)


def test_report_shows_how_the_per_image_bd_rates_spread(tmp_path):
    per_image = {"psnr": {"webp": {"a": -20.0, "b": -10.0, "c": 60.0}},
                 "ms_ssim_db": {"webp": {"a": -30.0, "b": -5.0, "c": 5.0}}}
    summary = {"model": {"model_id": "m", "weights_hash": "0" * 16, "decoders": ["ae"]}, "images": ["a", "b", "c"],
               "bpps": [0.4], "patches": {"size": 256, "stride": None}, "points": [], "versus_ae": [],
               "bd_rate": {"psnr": {"webp": 10.0}, "ms_ssim_db": {"webp": -10.0}}, "bd_rate_per_image": per_image}
    report = eval_report.write_report(summary, tmp_path, plots=False).read_text()
    assert "| PSNR | +10.0 % |" in report  # the mean, as before
    assert "| PSNR | median -10.0 %, -20.0 to +60.0 %, fewer bits on 2 of 3 |" in report
    assert "| MS-SSIM (dB) | median -5.0 %, -30.0 to +5.0 %, fewer bits on 2 of 3 |" in report
    assert "| c | +60.0 % |" in report
    summary.update(bd_rate={"psnr": {}, "ms_ssim_db": {}}, bd_rate_per_image={"psnr": {}, "ms_ssim_db": {}})
    report = eval_report.write_report(summary, tmp_path, plots=False).read_text()  # a run with --baselines ""
    assert "BD-rate" not in report and "| quality metric |" not in report


def test_a_run_folder_is_never_resumed_with_other_weights(images, tmp_path):
    """Rows of other weights (autoencoder or decoder), or of other decode defaults (a row's label
    names only its steps), would silently mix into the report."""
    out = tmp_path / "out"
    ev.Evaluation(FakeEngine(), config(images, out)).run()
    assert json.loads((out / "weights.json").read_text())["weights_hash"] == "0123456789abcdef"
    realism = {"defaults": {**FakeEngine().info.defaults,
                            "diffusion": DecodeSettings("diffusion", steps=2, realism=0.5)}}
    for change in ({"weights_hash": "fedcba9876543210"}, {"decoder_hashes": {"diffusion": "00000000000000ff"}},
                   realism):
        other = FakeEngine()
        other.info = dataclasses.replace(other.info, **change)
        with pytest.raises(HfdError, match="holds results of other weights"):
            ev.Evaluation(other, config(images, out))
    (out / "weights.json").unlink()  # a folder written before the record existed
    with pytest.raises(HfdError, match="without a record of their weights"):
        ev.Evaluation(FakeEngine(), config(images, out))


def test_a_retrained_decoder_is_measured_again_and_nothing_else(images, tmp_path, monkeypatch):
    """--remeasure-changed: after one decoder's weights change, its rows (main grid and sweep) and
    patch features are dropped and measured again; every other row is kept as it was."""
    made = []

    def features(patches, device="cpu", batch=16):
        made.append(len(patches))
        return np.zeros((len(patches), 4))

    monkeypatch.setattr(metrics, "inception_features", features)
    out = tmp_path / "out"
    ev.Evaluation(FakeEngine(), config(images, out, sweep="steps", sweep_values=(1.0, 2.0), fid=True, patch=16)).run()
    folders = sorted(p.name for p in (out / "features").iterdir())
    assert "flow-4-0.5" in folders and "sweep-steps-flow-2@0.5" not in folders  # slugs
    before = read_rows(out / "rows.csv")
    sweep_before = read_rows(out / "sweep.csv")
    retrained = FakeEngine()
    retrained.info = dataclasses.replace(retrained.info, decoder_hashes={"flow": "00000000000000ff"})
    with pytest.raises(HfdError, match="--remeasure-changed measures flow again"):
        ev.Evaluation(retrained, config(images, out))
    made.clear()
    ev.Evaluation(retrained, config(images, out, sweep="steps", sweep_values=(1.0, 2.0), fid=True, patch=16,
                                    remeasure_changed=True)).run()
    assert sorted(p.name for p in (out / "features").iterdir()) == folders
    flow_sets = [f for f in folders if f.startswith(("flow-", "sweep-steps-flow-"))]
    assert len(made) == 1 + 2 * len(flow_sets)  # the metrics' check, then two images of each flow set only
    after = read_rows(out / "rows.csv")
    assert len(after) == len(before)
    assert [r for r in after if not r["method"].startswith("flow")] == \
        [r for r in before if not r["method"].startswith("flow")]  # kept, in their order, unmeasured
    assert [r["encode_s"] for r in after if r["method"].startswith("flow")] != \
        [r["encode_s"] for r in before if r["method"].startswith("flow")]  # measured again
    assert len(read_rows(out / "sweep.csv")) == len(sweep_before)
    assert json.loads((out / "weights.json").read_text())["decoder_hashes"] == {"flow": "00000000000000ff"}
    autoencoder = FakeEngine()
    autoencoder.info = dataclasses.replace(autoencoder.info, weights_hash="fedcba9876543210")
    with pytest.raises(HfdError, match="use a new --out or delete it"):  # never for the autoencoder
        ev.Evaluation(autoencoder, config(images, out, remeasure_changed=True))


def test_optimised_encodes_are_asked_for_and_never_mixed_with_plain_ones(images, tmp_path):
    out, engine = tmp_path / "out", FakeEngine()
    ev.Evaluation(engine, config(images, out, optimise_steps=7)).run()
    assert engine.optimise_steps == 7
    assert json.loads((out / "weights.json").read_text())["optimise_steps"] == 7
    for steps in (0, 8):
        with pytest.raises(HfdError, match="optimise steps 7"):
            ev.Evaluation(FakeEngine(), config(images, out, optimise_steps=steps))
    assert "Encoder: latents optimised for 7 steps" in (out / "report.md").read_text()
