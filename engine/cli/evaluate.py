"""`hfd eval`: rate, distortion and realism of the codec against JPEG/WebP/AVIF at the same size."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.codec import add_engine_options, add_optimise_option, open_engine
from engine.errors import SettingsError


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="measure rate, distortion and realism against classical codecs",
        description="For every image × bitrate × method: file size, PSNR, MS-SSIM, ST-LPIPS, SSIMULACRA2 and "
                    "timings (OUT/rows.csv); per method and bitrate patch FID/KID; BD-rates of the autoencoder "
                    "against each classical codec; each refined decode minus the autoencoder-only one with "
                    "95 % paired bootstrap intervals over the images; plots, report.md and example crops. Rows already in "
                    "OUT/rows.csv are skipped, so an interrupted run resumes. Needs the `eval` extra.")
    p.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of test images")
    p.add_argument("--out", type=Path, required=True, metavar="OUT", help="results folder (resumable)")
    p.add_argument("--bpp", type=_floats, default=(0.05, 0.1, 0.2, 0.4, 0.8), metavar="B,B,...",
                   help="target bitrates (default: 0.05,0.1,0.2,0.4,0.8)")
    p.add_argument("--decoders", default=None, metavar="LIST",
                   help="e.g. ae,diffusion:16,flow:4 (steps optional); default: every decoder the weights have")
    p.add_argument("--baselines", default="jpeg,webp,avif", metavar="LIST", help="classical codecs (default: jpeg,webp,avif)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images")
    p.add_argument("--patch", type=int, default=256, metavar="P", help="FID/KID patch size (default: 256)")
    p.add_argument("--patch-stride", type=int, default=None, metavar="S",
                   help="FID/KID patch stride (default: HiFiC grid + half-patch-shifted grid)")
    p.add_argument("--no-fid", dest="fid", action="store_false", help="skip patch FID/KID (slow on a CPU)")
    p.add_argument("--sweep", choices=("steps", "shift", "noise", "realism"), default=None,
                   help="also vary one decoder setting at one bitrate")
    p.add_argument("--sweep-bpp", type=float, default=None, metavar="B",
                   help="bitrate of the sweep (default: the middle of --bpp)")
    p.add_argument("--sweep-values", type=_floats, default=None, metavar="V,V,...",
                   help="values of the swept setting (default: steps 1..32, noise and realism 0..1, shift over each "
                        "decoder's range)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="write report.md without PNG plots")
    p.add_argument("--crops", type=int, default=3, metavar="N", help="save example crops of the first N images (default: 3)")
    p.add_argument("--remeasure-changed", action="store_true",
                   help="resume a folder whose decoders' weights or default settings have changed since: their "
                        "results are measured again, everything else is kept (other changes are still refused)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for torch (default 0: torch's choice; 1 avoids thrashing beside a busy job)")
    add_optimise_option(p)
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.api import resolve_device
    from engine.evaluation.run import EvalConfig, Evaluation

    if args.limit is not None and args.limit < 1:
        raise SettingsError(f"--limit must be at least 1, got {args.limit}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    engine = open_engine(args)
    config = EvalConfig(images=args.images, out=args.out, bpps=args.bpp, decoders=args.decoders,
                        baselines=args.baselines, limit=args.limit, patch=args.patch, patch_stride=args.patch_stride,
                        fid=args.fid, metric_device=str(resolve_device(args.device)), sweep=args.sweep,
                        sweep_bpp=args.sweep_bpp, sweep_values=args.sweep_values, crop_images=args.crops,
                        plots=args.plots, optimise_steps=args.optimise, remeasure_changed=args.remeasure_changed)
    Evaluation(engine, config).run()
    print(f"report: {args.out / 'report.md'}")
    return 0
