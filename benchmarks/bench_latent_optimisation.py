"""What encoder-side latent optimisation buys and costs, per step count, with the shipped weights:
file size and PSNR of the autoencoder decode against the plain encoder at the same raw rate, the
rate–distortion cost it minimises (bits per pixel + λ·255²·MSE, measured on the real file), and
the encode time, in fp32 and in bf16 autocast (what the engine uses where the device has it),
all in one run.

    python benchmarks/bench_latent_optimisation.py [--images assets/samples] [--rates 0.4,0.8]
                                                   [--steps 25,50,100,200] [--out benchmarks/results]

Writes a Markdown table named after the machine and date."""
from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from engine.api import Engine
from engine.codec.images import load_image
from engine.data.photos import list_images
from engine.evaluation.metrics import psnr


def cost(engine: Engine, rgb: np.ndarray, data: bytes, rate: float) -> tuple[float, float, float]:
    """(bpp, PSNR, bpp + λ·255²·MSE) of a file's autoencoder decode."""
    decoded = engine.decode_ae(data)
    mse = np.mean((decoded.astype(float) - rgb) ** 2) / 255 ** 2
    bpp = len(data) * 8 / rgb.shape[0] / rgb.shape[1]
    return bpp, psnr(decoded, rgb), bpp + float(engine.autoencoder.lmbda(torch.tensor(rate))) * 255 ** 2 * mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path("assets/samples"))
    parser.add_argument("--rates", default="0.4,0.8")
    parser.add_argument("--steps", default="25,50,100,200")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    step_counts = [int(s) for s in args.steps.split(",")]

    engine = Engine(device="cpu")
    fast = engine._fast
    rows, per_step = [], {"fp32": [], "bf16": []}
    for path in list_images(args.images):
        rgb = load_image(path).rgb
        megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
        for rate in rates:
            plain = engine.encode(rgb, rate=rate)
            p_bpp, p_psnr, p_cost = cost(engine, rgb, plain.data, rate)
            for steps in step_counts:
                for precision in (["fp32", "bf16"] if fast and steps == step_counts[0] else ["bf16" if fast else "fp32"]):
                    engine._fast = precision == "bf16"
                    start = time.perf_counter()
                    optimised = engine.encode(rgb, rate=rate, optimise_steps=steps)
                    seconds = time.perf_counter() - start
                    per_step[precision].append(seconds / steps / megapixels)
                engine._fast = fast
                bpp, quality, total = cost(engine, rgb, optimised.data, rate)
                rows.append(f"| {path.name} | {rate:g} | {steps} | {p_bpp:.4f} → {bpp:.4f} ({100 * (bpp / p_bpp - 1):+.1f} %) "
                            f"| {p_psnr:.2f} → {quality:.2f} ({quality - p_psnr:+.2f}) | {100 * (total / p_cost - 1):+.1f} % "
                            f"| {seconds:.1f} |")
                print(rows[-1], flush=True)

    speed = ", ".join(f"{name} {np.median(values):.2f} s per step per megapixel"
                      for name, values in per_step.items() if values)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"latent-optimisation-cpu-{date.today().isoformat()}.md"
    path.write_text("\n".join([
        f"# Encoder-side latent optimisation, {date.today().isoformat()}", "",
        f"Shipped weights on the CPU ({torch.get_num_threads()} threads); each row one `Engine.encode(rate=…, "
        "optimise_steps=N)` against the plain encode at the same raw rate. Cost: bits per pixel + λ·255²·MSE of "
        "the real file, the quantity the search lowers. Seconds: the whole encode in the engine's precision.", "",
        f"Median time: {speed} (fp32 measured at the first step count only).", "",
        "| image | rate | steps | bpp | PSNR (dB) | cost | s |", "|---|---|---|---|---|---|---|", *rows, ""]))
    print(path)


if __name__ == "__main__":
    main()
