"""`hfd eval`: rate–distortion–perception evaluation of the codec against classical codecs.

For every image × target bpp × method it records the real file size, PSNR, MS-SSIM, ST-LPIPS,
SSIMULACRA2 and timings in OUT/rows.csv; it stores the Inception features of each
reconstruction's 256² patches in OUT/features/ for patch FID/KID per method and bitrate. The
learned methods share one .hfd file per image and bitrate (the decoders add no bits); each
classical codec is matched to that file's size. Rows already in the CSV are skipped, so an
interrupted run resumes where it stopped. An optional sweep varies one decoder setting at one
bitrate (OUT/sweep.csv). OUT/summary.json aggregates everything; eval_report turns it into
plots and report.md."""
from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.api import DecodeSettings, Encoded, ModelInfo
from engine.codec.classical import (
    QUALITY_RANGE,
    decode_classical,
    encode_classical,
    match_size,
)
from engine.codec.images import load_image
from engine.data.photos import list_images
from engine.errors import HfdError, SettingsError
from engine.evaluation import metrics
from engine.evaluation.report import write_report
from engine.evaluation.summary import summarize

IMAGE_METRICS = ("psnr", "ms_ssim", "st_lpips", "ssimulacra2", "top_octave")
ROW_FIELDS = ("image", "width", "height", "target_bpp", "method", "bytes", "bpp", "quality", "over_target",
              *IMAGE_METRICS, "encode_s", "decode_s", "note")
SWEEP_FIELDS = ("image", "target_bpp", "method", "parameter", "value", "bytes", "bpp", *IMAGE_METRICS,
                "decode_s")
SWEEP_KEY = ("image", "target_bpp", "method", "parameter", "value")
SWEEP_PARAMETERS = ("steps", "shift", "noise", "realism")
DEFAULT_SWEEP_VALUES = {"steps": (1, 2, 4, 8, 16, 32), "noise": (0.0, 0.25, 0.5, 0.75, 1.0),
                        "realism": (0.0, 0.25, 0.5, 0.75, 1.0)}
CROP_SIZE = 256


class EngineLike(Protocol):
    """The part of engine.api.Engine the evaluation uses."""

    @property
    def info(self) -> ModelInfo: ...
    def encode(self, rgb: np.ndarray, *, bpp: float, optimise_steps: int = 0) -> Encoded: ...
    def decode_ae(self, data: bytes, *, post_filter: bool = True) -> np.ndarray: ...
    def refine(self, x_ae: np.ndarray, settings: DecodeSettings, *, rate: Optional[float] = None) -> np.ndarray: ...


# ---- what to evaluate ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """A learned decode (``settings``) or a classical codec (``codec``, matched to ``size_factor``
    times the learned file's bytes), named as in the CSV."""

    name: str
    settings: Optional[DecodeSettings] = None
    codec: Optional[str] = None
    size_factor: float = 1.0

    @property
    def is_learned(self) -> bool:
        return self.settings is not None


def learned_methods(spec: Optional[str], info: ModelInfo) -> list[Method]:
    """Parse "ae,diffusion:16,flow:4" (steps optional, default from the weights); None = all decoders
    the weights have, at their default settings."""
    parts = [p.strip() for p in spec.split(",") if p.strip()] if spec is not None else list(info.decoders)
    methods = []
    for part in parts:
        decoder, _, steps = part.partition(":")
        if decoder not in ("ae", "diffusion", "flow"):
            raise SettingsError(f"unknown decoder {decoder!r} in --decoders; use ae, diffusion[:STEPS], flow[:STEPS]")
        if decoder not in info.decoders:
            raise SettingsError(f"the loaded weights have no {decoder} decoder (they have {', '.join(info.decoders)})")
        if decoder == "ae":
            methods.append(Method("ae", DecodeSettings(decoder="ae", steps=1)))
            continue
        settings = info.defaults.get(decoder, DecodeSettings(decoder=decoder))
        if steps:
            if not steps.isdigit() or int(steps) < 1:
                raise SettingsError(f"steps in {part!r} must be a positive integer")
            settings = dataclasses.replace(settings, steps=int(steps))
        methods.append(Method(f"{decoder}:{settings.steps}", settings))
    return methods


def classical_methods(spec: str) -> list[Method]:
    """Parse "jpeg,webp,avif,avif@2x": each codec at the learned file's size, or at F times it
    ("@Fx": the HiFiC comparison at twice the bytes)."""
    methods = []
    for name in (p.strip() for p in spec.split(",") if p.strip()):
        codec, _, factor = name.partition("@")
        if codec not in QUALITY_RANGE:
            raise SettingsError(f"unknown baseline {codec!r}; choose from {', '.join(QUALITY_RANGE)} "
                                f"(optionally @Fx for F times the bytes)")
        try:
            size_factor = float(factor.removesuffix("x")) if factor else 1.0
        except ValueError:
            size_factor = 0.0
        if not size_factor > 0:
            raise SettingsError(f"baseline {name!r}: the size factor must be a positive number, as in avif@2x")
        methods.append(Method(name, codec=codec, size_factor=size_factor))
    return methods


@dataclass(frozen=True)
class EvalConfig:
    images: Path
    out: Path
    bpps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
    decoders: Optional[str] = None  # None: every decoder the weights have
    baselines: str = "jpeg,webp,avif"
    limit: Optional[int] = None
    patch: int = 256
    patch_stride: Optional[int] = None  # None: the HiFiC two-grid protocol
    fid: bool = True
    metric_device: str = "cpu"
    sweep: Optional[str] = None
    sweep_bpp: Optional[float] = None  # default: the middle of ``bpps``
    sweep_values: Optional[tuple[float, ...]] = None
    crop_images: int = 3  # how many images get example crops
    plots: bool = True  # PNG plots in the report (needs matplotlib)
    optimise_steps: int = 0  # encoder-side latent optimisation steps per .hfd file (0: the analysis transform's)
    remeasure_changed: bool = False  # drop and redo the results of decoders whose weights or defaults changed
    progress: bool = True


# ---- resumable storage -----------------------------------------------------------------------------

def check_weights_record(out: Path, info: ModelInfo, has_rows: bool, optimise_steps: int = 0,
                         remeasure_changed: bool = False) -> set[str]:
    """Resuming must never mix rows of two sets of weights, of two encoders or of two decode
    defaults: OUT/weights.json names the weights its rows came from, the decoders' default
    settings (a row's label carries only its step count) and the latent optimisation steps,
    when there were any. A run with others (or a folder of rows without the record) is refused
    instead of silently reusing stale rows; with ``remeasure_changed``, where only some decoders'
    weights or defaults differ, the record is updated and those decoders are returned: their
    rows must be dropped and measured again (everything else still holds)."""
    record = {"model_id": info.model_id, "weights_hash": info.weights_hash,
              "decoder_hashes": dict(sorted(info.decoder_hashes.items())),
              "decode_defaults": {kind: {key: value for key, value in info.settings_record(settings).items()
                                         if key not in ("decoder", "steps")}
                                  for kind, settings in sorted(info.defaults.items()) if kind != "ae"}}
    if info.post_filter_hash is not None:
        # Rows from before the realism blend moved from g_s's output to the post-filtered decode
        # carry the same hashes; this key keeps them apart.
        record["post_filter_hash"] = info.post_filter_hash
        record["realism_base"] = "post_filtered"
    if optimise_steps:
        record["optimise_steps"] = optimise_steps
    path = out / "weights.json"
    changed: set[str] = set()
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != record:
            changed = changed_decoders(stored, record)
            if not (remeasure_changed and changed):
                hint = (f"; --remeasure-changed measures {', '.join(sorted(changed))} again and keeps the rest"
                        if changed else "; use a new --out or delete it")
                raise HfdError(f"{out} holds results of other weights, encoder settings or decode defaults "
                               f"({stored.get('weights_hash')}, decoders {stored.get('decoder_hashes')}, "
                               f"defaults {stored.get('decode_defaults')}, optimise steps "
                               f"{stored.get('optimise_steps', 0)}){hint}")
            path.write_text(json.dumps(record, indent=1) + "\n")
    elif has_rows:
        raise HfdError(f"{out} holds results without a record of their weights; use a new --out or delete it")
    else:
        path.write_text(json.dumps(record, indent=1) + "\n")
    return changed


def changed_decoders(stored: dict, record: dict) -> set[str]:
    """The decoders whose weights or default settings differ between two weights records, when
    nothing else does (the autoencoder, post-filter and encoder settings); empty otherwise."""
    per_decoder = ("decoder_hashes", "decode_defaults")
    if {k: v for k, v in stored.items() if k not in per_decoder} != \
            {k: v for k, v in record.items() if k not in per_decoder}:
        return set()
    changed = set()
    for key in per_decoder:
        old, new = stored.get(key, {}), record.get(key, {})
        changed |= {kind for kind in set(old) | set(new) if old.get(kind) != new.get(kind)}
    return changed


class CsvLog:
    """Append-only CSV whose rows are identified by ``key`` columns; rows already written are known."""

    def __init__(self, path: Path, fields: tuple[str, ...], key: tuple[str, ...]) -> None:
        self.path, self.fields, self.key = path, fields, key
        self.rows: list[dict[str, str]] = []
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) != fields:
                    raise HfdError(f"{path} has other columns than this version writes; use a new --out")
                self.rows = list(reader)
        else:
            with path.open("w", newline="") as f:
                csv.DictWriter(f, fields).writeheader()
        self._keys = {self._key_of(row) for row in self.rows}

    def _key_of(self, row: dict) -> tuple[str, ...]:
        return tuple(_cell(row[k]) for k in self.key)

    def has(self, **key) -> bool:
        return self._key_of(key) in self._keys

    def drop(self, unwanted: Callable[[dict[str, str]], bool]) -> int:
        """Remove the rows ``unwanted`` picks (the file is rewritten); how many were removed."""
        kept = [row for row in self.rows if not unwanted(row)]
        removed = len(self.rows) - len(kept)
        if removed:
            with self.path.open("w", newline="") as f:
                writer = csv.DictWriter(f, self.fields)
                writer.writeheader()
                writer.writerows(kept)
            self.rows, self._keys = kept, {self._key_of(row) for row in kept}
        return removed

    def append(self, row: dict) -> None:
        row = {field: _cell(row.get(field, "")) for field in self.fields}
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(row)
        self.rows.append(row)
        self._keys.add(self._key_of(row))


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


class FeatureStore:
    """Inception patch features per (set, image) as .npy files: "original" or "<method>@<bpp>"."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, set_name: str, image: str) -> Path:
        return self.folder / _slug(set_name) / f"{_slug(image)}.npy"

    def has(self, set_name: str, image: str) -> bool:
        return self.path(set_name, image).is_file()

    def save(self, set_name: str, image: str, features: np.ndarray) -> None:
        path = self.path(set_name, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, features.astype(np.float32))

    def load_set(self, set_name: str, images: Iterable[str]) -> np.ndarray:
        arrays = [np.load(self.path(set_name, i)).astype(np.float64) for i in images if self.has(set_name, i)]
        return np.concatenate(arrays) if arrays else np.zeros((0, 2048))


# ---- one reconstruction ------------------------------------------------------------------------------

def image_metrics(original: np.ndarray, decoded: np.ndarray, device: str) -> dict[str, float]:
    return {"psnr": metrics.psnr(original, decoded), "ms_ssim": metrics.ms_ssim(original, decoded),
            "st_lpips": metrics.st_lpips(original, decoded, device=device),
            "ssimulacra2": metrics.ssimulacra2(original, decoded),
            "top_octave": metrics.top_octave_log_power_ratio(original, decoded)}


def check_metrics_available(config: EvalConfig) -> None:
    """Run every metric once on a tiny pair so a missing package fails now, not hours in."""
    a = np.zeros((64, 64, 3), np.uint8)
    image_metrics(a, a, config.metric_device)
    if config.fid:
        metrics.inception_features([a], config.metric_device)


def detailed_window(rgb: np.ndarray, size: int = CROP_SIZE) -> tuple[int, int, int]:
    """(top, left, side) of the square crop with the most gradient energy, for example crops."""
    side = min(size, *rgb.shape[:2])
    gray = rgb.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, where = -1.0, (0, 0)
    step = max(1, side // 4)
    span = side - 1  # the energy map is one pixel smaller than the image
    for top in range(0, energy.shape[0] - span + 1, step):
        for left in range(0, energy.shape[1] - span + 1, step):
            bottom, right = top + span, left + span
            total = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
            if total > best:
                best, where = total, (top, left)
    return where[0], where[1], side


class Evaluation:
    """One `hfd eval` run over a folder of images; see the module docstring."""

    def __init__(self, engine: EngineLike, config: EvalConfig, log: Callable[[str], None] = print) -> None:
        config = dataclasses.replace(config, bpps=tuple(float(b) for b in config.bpps))
        self.engine, self.config, self.log = engine, config, log
        self.info = engine.info
        self.learned = learned_methods(config.decoders, self.info)
        self.classical = classical_methods(config.baselines)
        if not config.bpps or any(b <= 0 for b in config.bpps):
            raise SettingsError("--bpp needs one or more positive bitrates")
        paths = list_images(config.images)
        if config.limit is not None:
            paths = paths[:config.limit]
        if not paths:
            raise HfdError(f"no images found in {config.images}")
        self.paths = paths
        self.names = [str(p.relative_to(config.images)) for p in paths]
        config.out.mkdir(parents=True, exist_ok=True)
        if config.sweep:
            self.sweep_plan()  # a bad sweep fails now, not after the main grid
        self.rows = CsvLog(config.out / "rows.csv", ROW_FIELDS, ("image", "target_bpp", "method"))
        changed = check_weights_record(config.out, self.info, has_rows=bool(self.rows.rows),
                                       optimise_steps=config.optimise_steps,
                                       remeasure_changed=config.remeasure_changed)
        self.features = FeatureStore(config.out / "features")
        if changed:
            self._forget(changed)
        self._warmed_up = False

    # -- main grid --
    def run(self) -> dict:
        """Evaluate everything not yet in OUT, then write summary.json, the plots and report.md."""
        check_metrics_available(self.config)
        methods = self.learned + self.classical
        points = [(i, b) for i in range(len(self.paths)) for b in self.config.bpps]
        with tqdm(total=len(points), desc="eval", unit="point", disable=not self.config.progress) as bar:
            for index, bpp in points:
                name = self.names[index]
                todo = [m for m in methods if not self.rows.has(image=name, target_bpp=bpp, method=m.name)]
                if todo or not self._has_original_features(name):
                    self._evaluate_point(index, bpp, todo)
                bar.update()
        sweep_rows = self.run_sweep() if self.config.sweep else None
        summary = summarize(self, sweep_rows)
        write_report(summary, self.config.out, plots=self.config.plots)
        return summary

    def _has_original_features(self, name: str) -> bool:
        return not self.config.fid or self.features.has("original", name)

    def _forget(self, decoders: set[str]) -> None:
        """Drop every result of ``decoders`` (rows, sweep rows, patch features) so they are measured
        again with the decoders' new weights or defaults."""
        rows = self.rows.drop(lambda row: row["method"].partition(":")[0] in decoders)
        sweep_path = self.config.out / "sweep.csv"
        if sweep_path.is_file():
            rows += CsvLog(sweep_path, SWEEP_FIELDS, SWEEP_KEY).drop(lambda row: row["method"] in decoders)
        own = re.compile(rf"^(sweep-[A-Za-z]+-)?({'|'.join(map(re.escape, sorted(decoders)))})-")
        for folder in list(self.features.folder.glob("*")):
            if folder.is_dir() and own.match(folder.name):
                shutil.rmtree(folder)
        self.log(f"{', '.join(sorted(decoders))}: other weights or default settings than this folder's "
                 f"results; {rows} rows will be measured again")

    def _load(self, index: int) -> np.ndarray:
        return load_image(self.paths[index]).rgb

    def _record(self, set_name: str, image: str, decoded: np.ndarray) -> None:
        if self.config.fid:
            patches = metrics.extract_patches(decoded, self.config.patch, self.config.patch_stride)
            self.features.save(set_name, image, metrics.inception_features(patches, self.config.metric_device))

    def _save_crop(self, index: int, label: str, decoded: np.ndarray, window: tuple[int, int, int]) -> None:
        if index >= self.config.crop_images:
            return
        top, left, side = window
        folder = self.config.out / "crops" / _slug(Path(self.names[index]).stem)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(decoded[top:top + side, left:left + side]).save(folder / f"{_slug(label)}.png")

    def _warm_up(self, rgb: np.ndarray) -> None:
        """One small encode, decode and refine per learned method before anything is timed, so
        lazy initialisation is not billed to the first image."""
        self._warmed_up = True
        try:
            encoded = self.engine.encode(rgb[:64, :64], bpp=max(self.config.bpps))
        except SettingsError:
            return
        x_ae = self.engine.decode_ae(encoded.data, post_filter=False)
        for method in self.learned:
            self.engine.refine(x_ae, method.settings, rate=encoded.rate)

    def _encode(self, rgb: np.ndarray, bpp: float) -> Encoded:
        return self.engine.encode(rgb, bpp=bpp, optimise_steps=self.config.optimise_steps)

    def _evaluate_point(self, index: int, bpp: float, todo: list[Method]) -> None:
        name, rgb = self.names[index], self._load(index)
        if not self._warmed_up and self.learned:
            self._warm_up(rgb)
        height, width = rgb.shape[:2]
        window = detailed_window(rgb)
        if not self._has_original_features(name):
            self._record("original", name, rgb)
        self._save_crop(index, "original", rgb, window)
        base = {"image": name, "width": width, "height": height, "target_bpp": bpp}

        start = time.perf_counter()
        try:
            encoded: Optional[Encoded] = self._encode(rgb, bpp)
        except SettingsError as exc:  # below the model's lowest rate for this image
            encoded, note = None, str(exc)
        encode_s = time.perf_counter() - start
        target_bytes = encoded.nbytes if encoded else max(1, int(bpp * width * height / 8))

        learned_todo = [m for m in todo if m.is_learned]
        if learned_todo and encoded is None:
            for method in learned_todo:
                self.rows.append({**base, "method": method.name, "note": note})
        elif learned_todo:
            start = time.perf_counter()
            x_ae = self.engine.decode_ae(encoded.data, post_filter=False)
            ae_s = time.perf_counter() - start
            for method in learned_todo:
                start = time.perf_counter()
                decoded = self.engine.refine(x_ae, method.settings, rate=encoded.rate)
                decode_s = ae_s + time.perf_counter() - start  # for "ae": the post-filter, if any
                self._finish(index, method, bpp, base, rgb, decoded, window, nbytes=encoded.nbytes,
                             encode_s=encode_s, decode_s=decode_s)

        for method in (m for m in todo if not m.is_learned):
            result = match_size(rgb, method.codec, round(target_bytes * method.size_factor))
            start = time.perf_counter()
            encode_classical(rgb, method.codec, result.quality)  # timed once, outside the size search
            classical_encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decode_classical(result.data)
            classical_decode_s = time.perf_counter() - start
            self._finish(index, method, bpp, base, rgb, result.rgb, window, nbytes=result.nbytes,
                         encode_s=classical_encode_s, decode_s=classical_decode_s, quality=result.quality,
                         over_target=result.over_target)

    def _finish(self, index: int, method: Method, bpp: float, base: dict, rgb: np.ndarray, decoded: np.ndarray,
                window: tuple[int, int, int], *, nbytes: int, encode_s: float, decode_s: float,
                quality: object = "", over_target: object = "") -> None:
        """Metrics, features and crop of one reconstruction, then its CSV row (written last, so a
        row in the CSV means everything for it is on disk)."""
        self._record(f"{method.name}@{bpp:g}", base["image"], decoded)
        self._save_crop(index, f"{bpp:g}bpp_{method.name}", decoded, window)
        values = image_metrics(rgb, decoded, self.config.metric_device)
        self.rows.append({**base, "method": method.name, "bytes": nbytes,
                          "bpp": nbytes * 8 / (base["width"] * base["height"]), "quality": quality,
                          "over_target": over_target, **values, "encode_s": encode_s, "decode_s": decode_s})

    # -- sweep --
    def sweep_plan(self) -> tuple[str, float, list[tuple[Method, float]]]:
        """(parameter, bpp, [(method, value)]) of the configured sweep."""
        parameter = self.config.sweep
        if parameter not in SWEEP_PARAMETERS:
            raise SettingsError(f"--sweep must be one of {', '.join(SWEEP_PARAMETERS)}, got {parameter!r}")
        bpps = sorted(self.config.bpps)
        bpp = self.config.sweep_bpp if self.config.sweep_bpp is not None else bpps[len(bpps) // 2]
        refined = [m for m in self.learned if m.settings.decoder != "ae"]
        if not refined:
            raise SettingsError(f"a {parameter} sweep needs a refining decoder (diffusion or flow) in --decoders")
        return parameter, bpp, [(m, v) for m in refined for v in self._sweep_values(parameter, m.settings.decoder)]

    def _sweep_values(self, parameter: str, decoder: str) -> tuple[float, ...]:
        if self.config.sweep_values is not None:
            return tuple(self.config.sweep_values)
        if parameter == "shift":  # each decoder over its own range
            low, high = self.info.shift_ranges[decoder]
            return tuple(float(v) for v in np.linspace(low, high, 5))
        return DEFAULT_SWEEP_VALUES[parameter]

    def run_sweep(self) -> list[dict[str, str]]:
        parameter, bpp, plan = self.sweep_plan()
        log = CsvLog(self.config.out / "sweep.csv", SWEEP_FIELDS, SWEEP_KEY)
        with tqdm(total=len(self.paths), desc=f"sweep {parameter}", unit="image",
                  disable=not self.config.progress) as bar:
            for index, name in enumerate(self.names):
                todo = [(m, v) for m, v in plan if not log.has(image=name, target_bpp=bpp, method=m.settings.decoder,
                                                                 parameter=parameter, value=float(v))]
                if todo:
                    self._sweep_image(index, bpp, parameter, todo, log)
                bar.update()
        return [r for r in log.rows if r["parameter"] == parameter and r["target_bpp"] == _cell(bpp)]

    def _sweep_image(self, index: int, bpp: float, parameter: str, todo: list[tuple[Method, float]],
                     log: CsvLog) -> None:
        name, rgb = self.names[index], self._load(index)
        if not self._has_original_features(name):
            self._record("original", name, rgb)
        try:
            encoded = self._encode(rgb, bpp)
        except SettingsError as exc:
            self.log(f"sweep: {name} skipped: {exc}")
            return
        x_ae = self.engine.decode_ae(encoded.data, post_filter=False)
        for method, value in todo:
            value = float(value)
            setting = int(value) if parameter == "steps" else value
            settings = dataclasses.replace(method.settings, **{parameter: setting})
            start = time.perf_counter()
            decoded = self.engine.refine(x_ae, settings, rate=encoded.rate)
            decode_s = time.perf_counter() - start
            self._record(f"sweep-{parameter}-{method.settings.decoder}-{value:g}@{bpp:g}", name, decoded)
            log.append({"image": name, "target_bpp": bpp, "method": method.settings.decoder, "parameter": parameter,
                        "value": value, "bytes": encoded.nbytes, "bpp": encoded.bpp,
                        **image_metrics(rgb, decoded, self.config.metric_device), "decode_s": decode_s})

