"""Plots and report.md of an `hfd eval` run, from its summary (see eval_summary)."""
from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Optional

from engine.decoders.realism_schedule import RealismSchedule
from engine.evaluation.metrics import require_package
from engine.settings import DECODER_SETTINGS

# (summary key, axis label, which direction is better)
CURVE_METRICS = (("psnr", "PSNR (dB)", "higher"), ("ms_ssim_db", "MS-SSIM (dB)", "higher"),
                 ("st_lpips", "ST-LPIPS", "lower"), ("ssimulacra2", "SSIMULACRA2", "higher"),
                 ("fid", "patch FID", "lower"), ("kid", "patch KID", "lower"))
TABLE_COLUMNS = (("bpp", "bpp", "{:.4f}"), ("psnr", "PSNR", "{:.2f}"), ("ms_ssim", "MS-SSIM", "{:.4f}"),
                 ("st_lpips", "ST-LPIPS", "{:.4f}"), ("ssimulacra2", "SSIMULACRA2", "{:.2f}"),
                 ("top_octave", "top octave", "{:+.2f}"),
                 ("fid", "FID", "{:.2f}"), ("kid", "KID", "{:.4f}"), ("encode_s", "enc s", "{:.2f}"),
                 ("decode_s", "dec s", "{:.2f}"))


def _plot(path: Path, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, title: str,
          log_x: bool) -> bool:
    """One line per series; returns False (and writes nothing) when no series has two points."""
    series = {name: sorted(points) for name, points in series.items() if points}
    if not any(len(points) >= 2 for points in series.values()):
        return False
    require_package("matplotlib", "matplotlib", "eval plots")
    from matplotlib.figure import (
        Figure,  # without pyplot: no GUI backend, much faster to import
    )

    figure = Figure(figsize=(6, 4), dpi=110)
    figure.subplots_adjust(left=0.13, right=0.97, top=0.91, bottom=0.13)
    axes = figure.add_subplot()
    for name, points in series.items():
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
    if log_x:
        axes.set_xscale("log")
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path)
    return True


def curve_plots(summary: dict, out: Path) -> list[tuple[str, str]]:
    """Each metric against bpp, one line per method; returns (file name, caption) of those written."""
    written = []
    for key, label, better in CURVE_METRICS:
        series: dict[str, list[tuple[float, float]]] = {}
        for point in summary["points"]:
            if point.get("bpp") is not None and point.get(key) is not None:
                series.setdefault(point["method"], []).append((point["bpp"], point[key]))
        name = f"plot_{key}.png"
        if _plot(out / name, series, "bits per pixel", label, f"{label} vs rate ({better} is better)", True):
            written.append((name, f"{label} against bpp ({better} is better)"))
    return written


def sweep_plots(sweep: dict, out: Path) -> list[tuple[str, str]]:
    written = []
    parameter = sweep["parameter"]
    for key, label, better in CURVE_METRICS:
        if key == "ms_ssim_db":
            continue  # the sweep keeps raw MS-SSIM only
        series: dict[str, list[tuple[float, float]]] = {}
        for point in sweep["points"]:
            if point.get(key) is not None:
                series.setdefault(point["method"], []).append((point["value"], point[key]))
        name = f"sweep_{parameter}_{key}.png"
        title = f"{label} vs {parameter} at {sweep['bpp']:g} bpp ({better} is better)"
        if _plot(out / name, series, parameter, label, title, parameter == "steps"):
            written.append((name, title))
    return written


def _cell(value: Optional[float], fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _bd_rate_spread_section(per_image: dict[str, dict[str, dict[str, float]]], baselines: list[str]) -> list[str]:
    """How the per-image BD-rates behind the means spread: one ill-conditioned image (a flat photo
    whose curve spans a few dB) can move a mean of twenty by several points."""
    lines = ["Spread over the images: median, range, and on how many images the autoencoder needs fewer bits.", "",
             "| quality metric | " + " | ".join(baselines) + " |", "|" + "---|" * (len(baselines) + 1)]
    for metric, label in (("psnr", "PSNR"), ("ms_ssim_db", "MS-SSIM (dB)")):
        cells = []
        for baseline in baselines:
            values = list(per_image[metric].get(baseline, {}).values())
            cells.append(f"median {median(values):+.1f} %, {min(values):+.1f} to {max(values):+.1f} %, "
                         f"fewer bits on {sum(v < 0 for v in values)} of {len(values)}" if values else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    images = sorted({image for by_other in per_image["psnr"].values() for image in by_other})
    lines += ["", "<details><summary>Per image, on PSNR</summary>", "",
              "| image | " + " | ".join(baselines) + " |", "|" + "---|" * (len(baselines) + 1)]
    for image in images:
        lines.append(f"| {image} | " + " | ".join(_cell(per_image["psnr"].get(b, {}).get(image), "{:+.1f} %")
                                               for b in baselines) + " |")
    return lines + ["", "</details>", ""]


def _points_table(points: list[dict], bpp: float) -> list[str]:
    header = "| method | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_COLUMNS) + 1)]
    for point in (p for p in points if p["target_bpp"] == bpp):
        flags = []
        if point["n_skipped"]:
            flags.append(f"{point['n_skipped']} skipped")
        if point["over_target"]:
            flags.append(f"{point['over_target']} over target")
        name = point["method"] + (f" ({', '.join(flags)})" if flags else "")
        lines.append(f"| {name} | " + " | ".join(_cell(point.get(k), f) for k, _, f in TABLE_COLUMNS) + " |")
    return lines


# (summary key, column label, format, which sign of the difference is better)
DIFFERENCE_COLUMNS = (("psnr", "Δ PSNR (dB)", "{:+.2f}", "higher"), ("st_lpips", "Δ ST-LPIPS", "{:+.4f}", "lower"),
                      ("fid", "Δ FID", "{:+.1f}", "lower"), ("kid", "Δ KID", "{:+.4f}", "lower"))


def _difference_cell(value: Optional[dict], fmt: str, better: str) -> str:
    """"+0.0012 [−0.0009, +0.0031]": bold where the whole interval is on the better side, italic
    where it is on the worse side."""
    if value is None:
        return "–"
    text = fmt.format(value["diff"])
    if value["low"] is None:
        return text
    cell = f"{text} [{fmt.format(value['low'])}, {fmt.format(value['high'])}]"
    above, below = value["low"] > 0, value["high"] < 0
    if above or below:
        return f"**{cell}**" if above == (better == "higher") else f"_{cell}_"
    return cell


def _versus_ae_section(entries: list[dict]) -> list[str]:
    lines = ["## Refined decodes against the autoencoder-only decode", "",
             "Each refined decode minus the autoencoder-only decode of the same files, with a 95 % paired "
             "bootstrap interval over the images (1000 resamples of the images, the same ones on both sides). "
             "Bold: the whole interval is on the better side, italic: on the worse side; an interval that "
             "straddles 0 is a difference these images cannot tell from noise.", "",
             "| decoder | bpp | images | " + " | ".join(label for _, label, _, _ in DIFFERENCE_COLUMNS) + " |",
             "|" + "---|" * (len(DIFFERENCE_COLUMNS) + 3)]
    for entry in entries:
        cells = [_difference_cell(entry.get(key), fmt, better) for key, _, fmt, better in DIFFERENCE_COLUMNS]
        lines.append(f"| {entry['method']} | {entry['target_bpp']:g} | {entry['n_images']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _settings_line(methods: list[dict]) -> list[str]:
    """One line naming every refined method's decode settings, so a report says what it measured."""
    def shown(value: object) -> str:
        if isinstance(value, list):  # a default realism that follows the rate
            return RealismSchedule.from_json(value).describe()
        return value if isinstance(value, str) else f"{value:g}"

    parts = [f"{m['name']}: " + ", ".join(f"{key} {shown(m['settings'][key])}"
                                          for key in DECODER_SETTINGS[m['settings']['decoder']])
             for m in methods if m.get("settings") and DECODER_SETTINGS.get(m["settings"]["decoder"])]
    return [f"Decode settings: {'; '.join(parts)}."] if parts else []


def _encoder_line(optimise_steps: int) -> list[str]:
    if not optimise_steps:
        return []
    return [f"Encoder: latents optimised for {optimise_steps} steps per file (`--optimise {optimise_steps}`; up to "
            "three times that to fill a bitrate), so the learned files and every codec matched to their "
            "sizes differ from a plain run's."]


def _refines(conditions: dict[str, str]) -> str:
    """Which decoders refine the post-filtered decode and which g_s's output, as a clause."""
    def clause(kinds: list[str], what: str) -> str:
        return f"{' and '.join(kinds)} refine{'s' if len(kinds) == 1 else ''} {what}"

    filtered = sorted(kind for kind, condition in conditions.items() if condition == "post_filtered")
    unfiltered = sorted(kind for kind, condition in conditions.items() if condition != "post_filtered")
    if not filtered:
        return "the decoders refine the unfiltered one"
    return "; ".join([clause(filtered, "it")] + ([clause(unfiltered, "the unfiltered one")] if unfiltered else []))


def write_report(summary: dict, out: Path, plots: bool = True) -> Path:
    """Write OUT/report.md, with the plots unless ``plots`` is False; returns the report's path."""
    model = summary["model"]
    stride = summary["patches"]["stride"]
    protocol = ("HiFiC protocol: non-overlapping patches plus a grid shifted by half a patch"
                if stride is None else f"patches every {stride} px")
    lines = [
        "# hfd evaluation",
        "",
        f"Model `{model['model_id']}` (weights {model['weights_hash'][:12]}), decoders: {', '.join(model['decoders'])}."
        + (f" The autoencoder's decode (`ae`) is post-filtered (post-filter {model['post_filter_hash'][:12]}); "
           f"{_refines(model.get('decoder_conditions', {}))}; at realism below 1 they blend toward the "
           "post-filtered decode." if model.get("post_filter_hash") else ""),
        f"{len(summary['images'])} images; target bitrates {', '.join(f'{b:g}' for b in summary['bpps'])} bpp. "
        "Learned methods share one .hfd file per image and bitrate; each classical codec is matched to that "
        "file's size (at or below it; `codec@2x`: to twice it). Rates count every byte of the files. "
        "Top octave: the mean log10 ratio of the luma power in the upper half of the spectrum to the "
        "original's (0 = the original's amount of fine detail, −0.3 = half of it, + = too much).",
        f"FID/KID on {summary['patches']['size']}² patches ({protocol}); per-image metrics are means over images.",
        *_encoder_line(summary.get("optimise_steps", 0)),
        *_settings_line(summary.get("methods", [])),
        "",
    ]
    for bpp in summary["bpps"]:
        lines += [f"## Target {bpp:g} bpp", "", *_points_table(summary["points"], bpp), ""]
    baselines = list(summary.get("bd_rate", {}).get("psnr", {}))
    if baselines:  # none when the run had no classical codec (--baselines "")
        lines += ["## BD-rate of the autoencoder against each classical codec", "",
                  "Negative: the autoencoder needs that many % fewer bits for the same quality. Computed per "
                  "image over the bitrates it reached, then averaged over the images.", "",
                  "| quality metric | " + " | ".join(baselines) + " |", "|" + "---|" * (len(baselines) + 1)]
        for metric, label in (("psnr", "PSNR"), ("ms_ssim_db", "MS-SSIM (dB)")):
            values = summary["bd_rate"][metric]
            lines.append(f"| {label} | " + " | ".join(_cell(values[b], "{:+.1f} %") for b in baselines) + " |")
        lines.append("")
        if summary.get("bd_rate_per_image"):
            lines += _bd_rate_spread_section(summary["bd_rate_per_image"], baselines)
    if summary.get("versus_ae"):
        lines += _versus_ae_section(summary["versus_ae"])
    curves = curve_plots(summary, out) if plots else []
    if curves:
        lines += ["## Curves", ""] + [f"![{caption}]({name})" for name, caption in curves] + [""]
    sweep = summary.get("sweep")
    if sweep:
        lines += [f"## Sweep of {sweep['parameter']} at {sweep['bpp']:g} bpp", "",
                  "| decoder | value | PSNR | MS-SSIM | ST-LPIPS | SSIMULACRA2 | top octave | FID | KID | dec s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for p in sweep["points"]:
            lines.append(f"| {p['method']} | {p['value']:g} | {_cell(p['psnr'], '{:.2f}')} | "
                         f"{_cell(p['ms_ssim'], '{:.4f}')} | {_cell(p['st_lpips'], '{:.4f}')} | "
                         f"{_cell(p['ssimulacra2'], '{:.2f}')} | {_cell(p.get('top_octave'), '{:+.2f}')} | "
                         f"{_cell(p['fid'], '{:.2f}')} | "
                         f"{_cell(p['kid'], '{:.4f}')} | {_cell(p['decode_s'], '{:.2f}')} |")
        lines.append("")
        if plots:
            lines += [f"![{caption}]({name})" for name, caption in sweep_plots(sweep, out)] + [""]
    crops = sorted((out / "crops").glob("*")) if (out / "crops").is_dir() else []
    if crops:
        lines += ["## Example crops", "",
                  "The most detailed 256² window of the first images, per bitrate and method: "
                  + ", ".join(f"[{c.name}](crops/{c.name}/)" for c in crops) + ".", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
