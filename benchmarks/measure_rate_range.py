"""The bitrate range one model spans: real file bpp (every byte, header included) and PSNR at
the lowest and highest rate, per photo, with the median over the photos.

    python benchmarks/measure_rate_range.py [--images data/pack/val/*.jpg assets/samples/*.png]

Prints a Markdown table."""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from engine.api import Engine
from engine.codec.images import load_image
from engine.evaluation.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", type=Path,
                        default=sorted(Path("data/pack/val").glob("*.jpg")) + sorted(Path("assets/samples").glob("*.png")))
    args = parser.parse_args()
    engine = Engine()
    print("| image | size | bpp at rate 0 | PSNR | bpp at rate 1 | PSNR |")
    print("|---|---|---|---|---|---|")
    lows, highs = [], []
    for path in args.images:
        rgb = load_image(path).rgb
        row = []
        for rate in (0.0, 1.0):
            encoded = engine.encode(rgb, rate=rate)
            row += [encoded.bpp, psnr(rgb, engine.decode_ae(encoded.data))]
        lows.append(row[0])
        highs.append(row[2])
        print(f"| {path.stem} | {rgb.shape[1]}×{rgb.shape[0]} | {row[0]:.3f} | {row[1]:.2f} | {row[2]:.3f} "
              f"| {row[3]:.2f} |", flush=True)
    print(f"| **median of {len(lows)}** | | **{statistics.median(lows):.3f}** (max {max(lows):.3f}) | "
          f"| **{statistics.median(highs):.3f}** (min {min(highs):.3f}) | |")


if __name__ == "__main__":
    main()
