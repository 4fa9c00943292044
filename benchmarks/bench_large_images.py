"""Peak memory and time of the codec on photo-sized images, each command in its own process.

    python benchmarks/bench_large_images.py [--sizes 4000x3000,8000x6000] [--out benchmarks/results/large-images.md]

For each size it builds a test photo (a mosaic of the bundled sample photos, so every region has
real texture), then runs what a user runs: `hfd compress --bpp 0.2`, `hfd decompress --decoder
ae`, and the refined decodes with each decoder's default settings, and records each process's
wall time and peak resident memory (the whole process: Python, torch and the models included)."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.png"))


def mosaic(width: int, height: int) -> np.ndarray:
    """The sample photos laid side by side (mirrored every other time, so edges meet smoothly)."""
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in SAMPLES]
    out = np.empty((height, width, 3), np.uint8)
    y, row = 0, 0
    while y < height:
        x, col = 0, 0
        tile_h = min(p.shape[0] for p in photos)
        while x < width:
            photo = photos[(row + col) % len(photos)][:tile_h]
            if (row + col) % 2:
                photo = photo[:, ::-1]
            w = min(photo.shape[1], width - x)
            h = min(tile_h, height - y)
            out[y:y + h, x:x + w] = photo[:h, :w]
            x, col = x + w, col + 1
        y, row = y + tile_h, row + 1
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4000x3000,8000x6000")
    p.add_argument("--bpp", type=float, default=0.2)
    p.add_argument("--decoders", default="diffusion,flow")
    p.add_argument("--out", type=Path, default=None, help="also write the table as Markdown here")
    args = p.parse_args()
    hfd = [sys.executable, "-m", "engine.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            photo, coded = folder / f"{size}.png", folder / f"{size}.hfd"
            Image.fromarray(mosaic(width, height)).save(photo, compress_level=1)
            commands = [("compress", ["compress", str(photo), str(coded), "--bpp", str(args.bpp)]),
                        ("decode, autoencoder", ["decompress", str(coded), str(folder / "ae.png"), "--decoder", "ae"])]
            commands += [(f"decode, {kind} (defaults)",
                          ["decompress", str(coded), str(folder / f"{kind}.png"), "--decoder", kind])
                         for kind in args.decoders.split(",") if kind]
            for name, command in commands:
                wall, peak = measure(hfd + command)
                rows.append((f"{width}×{height}", name, wall, peak))
                print(f"{width}×{height}  {name:28s} {wall:7.1f} s  {peak:5.2f} GiB", flush=True)
    table = ["| image | command | wall time | peak RSS |", "|---|---|---|---|"]
    table += [f"| {size} | {name} | {wall:.1f} s | {peak:.2f} GiB |" for size, name, wall, peak in rows]
    if args.out:
        args.out.write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


def measure(command: list[str]) -> tuple[float, float]:
    """Run ``command`` in a child Python that reports the command's own wall time and peak RSS."""
    probe = ("import resource, subprocess, sys, time\n"
             "start = time.perf_counter()\n"
             "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
             "wall = time.perf_counter() - start\n"
             "if done.returncode:\n"
             "    sys.exit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode)\n"
             "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe, *command], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[2:])} failed: {done.stderr.strip()}")
    wall, kib = done.stdout.split()
    return float(wall), int(kib) / 2 ** 20


if __name__ == "__main__":
    sys.exit(main())
