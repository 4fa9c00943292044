"""Aggregates of an `hfd eval` run: per method and bitrate means, patch FID/KID, BD-rates, the
refined decodes against the autoencoder-only one, sweep.

Per-image metrics are averaged over the images (non-finite values, e.g. the infinite PSNR of a
lossless decode, are left out); FID/KID compare the patch set of all reconstructions of a method
at a bitrate with the patch set of all originals.

A dozen photos give a few dozen patches, so a refined decode's FID "win" or "loss" against the
autoencoder can be noise: each difference comes with a paired bootstrap interval over the
images (the same resampled images on both sides)."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Optional, Protocol

import numpy as np

from engine.errors import HfdError
from engine.evaluation import metrics


class Evaluation(Protocol):
    """What a summary reads of an `hfd eval` run (engine.evaluation.run.Evaluation)."""

    config: Any
    info: Any
    rows: Any
    names: list[str]
    learned: list
    classical: list
    features: Any

    def sweep_plan(self) -> tuple: ...

AVERAGED = ("bytes", "bpp", "psnr", "ms_ssim", "st_lpips", "ssimulacra2", "top_octave", "encode_s", "decode_s")
BOOTSTRAP_RESAMPLES = 1000


def _mean(values: list[float]) -> Optional[float]:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _average(rows: list[dict[str, str]], columns: tuple[str, ...]) -> dict[str, Optional[float]]:
    return {c: _mean([float(r[c]) for r in rows if r.get(c, "") != ""]) for c in columns}


def _fid_kid(evaluation: Evaluation, set_name: str, images: list[str]) -> dict[str, Optional[float]]:
    if not evaluation.config.fid:
        return {"fid": None, "kid": None, "n_patches": 0}
    real = evaluation.features.load_set("original", evaluation.names)
    fake = evaluation.features.load_set(set_name, images)
    if len(real) < 2 or len(fake) < 2:
        return {"fid": None, "kid": None, "n_patches": len(fake)}
    result = metrics.fid_kid_from_features(real, fake)
    return {"fid": result.fid, "kid": result.kid, "n_patches": result.n_patches}


def ms_ssim_db(value: Optional[float]) -> Optional[float]:
    """MS-SSIM as −10·log10(1 − MS-SSIM), the usual scale for plots and BD-rates."""
    if value is None or value >= 1:
        return None
    return float(-10 * math.log10(1 - value))


def bd_rates_per_image(rows: list[dict[str, str]], reference: str,
                       others: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """BD-rate (%) of ``reference`` (the autoencoder) against each method in ``others``, per image,
    for PSNR and MS-SSIM (dB): ``table[metric][other][image]``; negative = the autoencoder needs
    fewer bits for the same quality. Images whose two curves cannot be compared (too few points,
    no overlap in quality) are left out.

    Per image, because not every image reaches every target bitrate (a model's lowest rate
    is above 0.1 bpp on a detailed photo): a mean over the few images that reach an extreme
    target is a point of another curve, and a BD integral over such a mixture is meaningless."""
    def curve(method: str, image: str, metric: str) -> tuple[list[float], list[float]]:
        pairs = []
        for row in rows:
            if row["method"] == method and row["image"] == image and not row["note"]:
                quality = float(row["psnr"]) if metric == "psnr" else ms_ssim_db(float(row["ms_ssim"]))
                if quality is not None and math.isfinite(quality):
                    pairs.append((float(row["bpp"]), quality))
        pairs.sort()
        return [b for b, _ in pairs], [q for _, q in pairs]

    images = sorted({row["image"] for row in rows})
    table: dict[str, dict[str, dict[str, float]]] = {}
    for metric in ("psnr", "ms_ssim_db"):
        table[metric] = {}
        for other in others:
            table[metric][other] = {}
            for image in images:
                ours, theirs = curve(reference, image, metric), curve(other, image, metric)
                try:
                    table[metric][other][image] = metrics.bd_rate(theirs[0], theirs[1], ours[0], ours[1])
                except HfdError:  # too few points or no overlap in quality
                    continue
    return table


def mean_bd_rates(per_image: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, Optional[float]]]:
    """The per-image BD-rates of :func:`bd_rates_per_image` averaged over the images
    (``table[metric][other]``; None where no image could be compared)."""
    return {metric: {other: float(np.mean(list(values.values()))) if values else None
                     for other, values in by_other.items()}
            for metric, by_other in per_image.items()}


def _difference(statistic, n_images: int) -> dict[str, Optional[float]]:
    """{"diff", "low", "high"}: ``statistic`` of all images and its 95 % bootstrap interval."""
    low, high = metrics.bootstrap_interval(statistic, n_images, BOOTSTRAP_RESAMPLES)
    return {"diff": float(statistic(np.arange(n_images))), "low": low, "high": high}


def against_reference(evaluation: Evaluation, rows: list[dict[str, str]], reference_rows: list[dict[str, str]],
                      set_name: str, reference_set: str) -> Optional[dict]:
    """A method minus the reference (the autoencoder-only decode of the same files) at one bitrate:
    mean PSNR and ST-LPIPS differences and the FID/KID differences, each with a 95 % paired
    bootstrap interval over the images both decoded; None with fewer than 2 such images."""
    ours = {r["image"]: r for r in rows if not r["note"]}
    theirs = {r["image"]: r for r in reference_rows if not r["note"]}
    images = sorted(ours.keys() & theirs.keys())
    if len(images) < 2:
        return None
    result: dict = {"n_images": len(images)}
    for column in ("psnr", "st_lpips"):
        diffs = np.array([float(ours[i][column]) - float(theirs[i][column]) for i in images])
        diffs = diffs[np.isfinite(diffs)]  # a lossless decode's infinite PSNR has no difference
        result[column] = _difference(lambda ix: diffs[ix].mean(), len(diffs)) if len(diffs) >= 2 else None
    store = evaluation.features
    sets = ("original", set_name, reference_set)
    stored = [i for i in images if all(store.has(name, i) for name in sets)] if evaluation.config.fid else []
    features = {i: [store.load_set(name, [i]) for name in sets] for i in stored}
    # images too small for a whole patch have none; every resample of the others has ≥ 2 patches
    patched = [i for i in stored if len(features[i][0])]
    if len(patched) >= 2:
        real, fake, base = ([features[i][k] for i in patched] for k in range(len(sets)))
        counts = [len(f) for f in real]
        starts = np.cumsum([0] + counts)  # image i's patches are rows starts[i]:starts[i+1] of each set
        real_all, fake_all, base_all = (np.concatenate(group) for group in (real, fake, base))
        # any resample of the images must fit the Gram path; past that (hundreds of large images,
        # where the interval matters least, and whose Gram matrices would be large) the
        # difference comes without one
        if max(counts) * len(patched) <= metrics.PairedGram.row_limit(real_all.shape[1]):
            refined, reference = metrics.PairedGram(real_all, fake_all), metrics.PairedGram(real_all, base_all)
            for measure in ("fid", "kid"):
                def gap(images_ix: np.ndarray, measure: str = measure) -> float:
                    rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in images_ix])
                    return getattr(refined, measure)(rows) - getattr(reference, measure)(rows)

                result[measure] = _difference(gap, len(patched))
        else:
            for measure, direct in (("fid", metrics.frechet_distance), ("kid", metrics.kernel_inception_distance)):
                result[measure] = {"diff": direct(real_all, fake_all) - direct(real_all, base_all),
                                   "low": None, "high": None}
    return result


def summarize(evaluation: Evaluation, sweep_rows: Optional[list[dict[str, str]]] = None) -> dict:
    """Build OUT/summary.json from the run's CSV rows and stored features, and write it."""
    config, info = evaluation.config, evaluation.info
    by_point: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in evaluation.rows.rows:
        if row["image"] in evaluation.names:
            by_point[(row["method"], row["target_bpp"])].append(row)
    points = []
    for method in evaluation.learned + evaluation.classical:
        for bpp in config.bpps:
            rows = by_point.get((method.name, repr(float(bpp))), [])
            measured = [r for r in rows if not r["note"]]
            point = {"method": method.name, "target_bpp": bpp, "n_images": len(measured),
                     "n_skipped": len(rows) - len(measured), **_average(measured, AVERAGED),
                     "over_target": sum(r["over_target"] == "True" for r in measured)}
            point["ms_ssim_db"] = ms_ssim_db(point["ms_ssim"])
            point.update(_fid_kid(evaluation, f"{method.name}@{bpp:g}", [r["image"] for r in measured]))
            points.append(point)
    refined = [m.name for m in evaluation.learned if m.settings.decoder != "ae"]
    versus_ae = []
    if any(m.name == "ae" for m in evaluation.learned):
        for name in refined:
            for bpp in config.bpps:
                key = repr(float(bpp))
                compared = against_reference(evaluation, by_point.get((name, key), []), by_point.get(("ae", key), []),
                                             f"{name}@{bpp:g}", f"ae@{bpp:g}")
                if compared is not None:
                    versus_ae.append({"method": name, "target_bpp": bpp, **compared})
    per_image = (bd_rates_per_image([r for r in evaluation.rows.rows if r["image"] in evaluation.names], "ae",
                                    [m.name for m in evaluation.classical if m.size_factor == 1])
                 if any(m.name == "ae" for m in evaluation.learned) else {})
    summary = {
        "model": {"model_id": info.model_id, "weights_hash": info.weights_hash, "decoders": list(info.decoders),
                  "post_filter_hash": info.post_filter_hash,
                  "decoder_conditions": dict(info.decoder_conditions)},
        "images": evaluation.names,
        "bpps": list(config.bpps),
        "patches": {"size": config.patch, "stride": config.patch_stride},
        "optimise_steps": config.optimise_steps,
        "methods": [{"name": m.name, "kind": "learned" if m.is_learned else "classical",
                     "settings": None if m.settings is None else info.settings_record(m.settings)}
                    for m in evaluation.learned + evaluation.classical],
        "points": points,
        "bd_rate": mean_bd_rates(per_image),
        "bd_rate_per_image": per_image,
        "versus_ae": versus_ae,
    }
    if sweep_rows is not None:
        summary["sweep"] = _summarize_sweep(evaluation, sweep_rows)
    (config.out / "summary.json").write_text(json.dumps(_finite(summary), indent=1) + "\n")
    return summary


def _summarize_sweep(evaluation: Evaluation, rows: list[dict[str, str]]) -> dict:
    parameter, bpp, _ = evaluation.sweep_plan()
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["value"])].append(row)
    points = []
    for (method, value), group in sorted(groups.items(), key=lambda kv: (kv[0][0], float(kv[0][1]))):
        point = {"method": method, "value": float(value), "n_images": len(group),
                 **_average(group, ("psnr", "ms_ssim", "st_lpips", "ssimulacra2", "top_octave", "decode_s"))}
        set_name = f"sweep-{parameter}-{method}-{float(value):g}@{bpp:g}"
        point.update(_fid_kid(evaluation, set_name, [r["image"] for r in group]))
        points.append(point)
    return {"parameter": parameter, "bpp": bpp, "points": points}


def _finite(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
