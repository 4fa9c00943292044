"""Crops at one bitrate, side by side: original | autoencoder | refined | AVIF at the same bytes.

    python scripts/crop_figure.py data/pack/test/*.jpg --bpp 0.1 --out docs/crops-0.1bpp.png

Each photo is coded to a real .hfd file at or below ``--bpp``; the autoencoder pane is its
autoencoder-only decode (post-filtered, as the app shows it), the refined pane the decoder's
decode of the same file with its default settings (or the ones given), and the AVIF pane the
largest AVIF file no bigger than the .hfd file. The crop is the ``--size``² window with the most
fine detail in the original (or ``--at X,Y``), shown at ``--zoom``× with nearest-neighbour
pixels so that what each codec drew is what one sees."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.api import Engine
from engine.codec.classical import match_size
from engine.codec.images import load_image

LABEL_HEIGHT = 22


def most_detailed_window(rgb: np.ndarray, size: int) -> tuple[int, int]:
    """(x, y) of the size² window with the most energy in a Laplacian of the luma (step size/4)."""
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = np.abs(4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    h, w = lap.shape
    step = max(1, size // 4)
    best, where = -1.0, (0, 0)
    for y in range(0, max(1, h - size + 1), step):
        for x in range(0, max(1, w - size + 1), step):
            energy = float(lap[y:y + size, x:x + size].mean())
            if energy > best:
                best, where = energy, (x + 1, y + 1)
    return where


def labelled(tile: np.ndarray, text: str) -> Image.Image:
    image = Image.new("RGB", (tile.shape[1], tile.shape[0] + LABEL_HEIGHT), "white")
    image.paste(Image.fromarray(tile), (0, LABEL_HEIGHT))
    ImageDraw.Draw(image).text((4, 4), text, fill="black")
    return image


def kb(nbytes: int) -> str:
    return f"{nbytes / 1000:.1f} KB" if nbytes >= 1000 else f"{nbytes} B"


def figure_row(engine: Engine, path: Path, bpp: float, decoder: str, overrides: dict, size: int, zoom: int,
               at: tuple[int, int] | None) -> list[Image.Image]:
    rgb = load_image(path).rgb
    encoded = engine.encode(rgb, bpp=bpp)
    x_ae = engine.decode_ae(encoded.data, post_filter=False)
    ae = engine.refine(x_ae, engine.settings_for("ae", encoded.rate), rate=encoded.rate)
    settings = engine.settings_for(decoder, encoded.rate, **overrides)
    refined = engine.refine(x_ae, settings, rate=encoded.rate, post_filtered=ae)
    avif = match_size(rgb, "avif", encoded.nbytes)
    x, y = at if at is not None else most_detailed_window(rgb, size)
    panes = [(rgb, f"{path.stem[:28]} (original)"),
             (ae, f"autoencoder {kb(encoded.nbytes)}, {encoded.bpp:.3f} bpp"),
             (refined, f"{decoder} {settings.steps} step{'s' * (settings.steps > 1)}, realism {settings.realism:g}"),
             (avif.rgb, f"AVIF {kb(avif.nbytes)}" + (" (its smallest file!)" if avif.over_target else ""))]
    return [labelled(np.kron(image[y:y + size, x:x + size], np.ones((zoom, zoom, 1), np.uint8)), text)
            for image, text in panes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--bpp", type=float, default=0.1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped ones)")
    p.add_argument("--decoder", default="flow", choices=["diffusion", "flow"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--realism", type=float, default=None)
    p.add_argument("--noise", type=float, default=None)
    p.add_argument("--solver", default=None, choices=["euler", "heun"])
    p.add_argument("--size", type=int, default=160, help="crop side in the photo's pixels")
    p.add_argument("--zoom", type=int, default=2)
    p.add_argument("--at", type=lambda s: tuple(int(v) for v in s.split(",")), default=None, metavar="X,Y")
    args = p.parse_args(argv)
    engine = Engine(args.weights)
    overrides = {k: v for k, v in (("steps", args.steps), ("realism", args.realism), ("noise", args.noise),
                                   ("solver", args.solver)) if v is not None}
    rows = [figure_row(engine, path, args.bpp, args.decoder, overrides, args.size, args.zoom, args.at)
            for path in args.images]
    tile_w, tile_h = rows[0][0].size
    sheet = Image.new("RGB", (4 * tile_w + 3 * 4, len(rows) * (tile_h + 4)), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * (tile_w + 4), r * (tile_h + 4)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
