"""Time what `hfd eval` spends per reconstruction of a shipped sample photo: each image metric,
the Inception features of its FID patches, and matching each classical codec's size (the
quality search), against a JPEG decode of the photo.

    python benchmarks/bench_eval_metrics.py [--image assets/samples/garden.png --device cpu --repeats 2]

Prints best wall time and best process CPU time (all threads); on a shared machine the CPU time
is the steadier figure. Needs the `eval` extra."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from engine.codec.classical import decode_classical, encode_classical, match_size
from engine.codec.images import load_image
from engine.evaluation import metrics


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up: loads weights, builds caches
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=Path(__file__).parents[1] / "assets/samples/garden.png")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    original = load_image(args.image).rgb
    decoded = decode_classical(encode_classical(original, "jpeg", 40))
    target = len(encode_classical(original, "jpeg", 40))
    patches = metrics.extract_patches(decoded)
    jobs = {
        "psnr": lambda: metrics.psnr(original, decoded),
        "ms_ssim": lambda: metrics.ms_ssim(original, decoded),
        "st_lpips": lambda: metrics.st_lpips(original, decoded, device=args.device),
        "ssimulacra2": lambda: metrics.ssimulacra2(original, decoded),
        f"inception ({len(patches)} patches)": lambda: metrics.inception_features(patches, args.device),
        **{f"match_size {codec}": (lambda c=codec: match_size(original, c, target)) for codec in ("jpeg", "webp", "avif")},
    }
    print(f"{args.image.name} {original.shape[1]}×{original.shape[0]}, device {args.device}, best of {args.repeats}")
    print(f"{'job':<28} {'wall s':>8} {'cpu s':>8}")
    for name, job in jobs.items():
        wall, cpu = best_of(job, args.repeats)
        print(f"{name:<28} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()
