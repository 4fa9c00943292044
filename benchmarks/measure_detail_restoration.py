"""Does the refined decode restore the finest detail the autoencoder lost? For each sample
photo and rate, the gap between each decode's top-octave radial power spectrum and the
original's (engine.metrics.top_octave_log_power_gap; lower = closer), with the shipped
default decode settings.

    python benchmarks/measure_detail_restoration.py [--rates 0,0.5,1] [--images assets/samples/*.png]"""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.api import DecodeSettings, Engine
from engine.codec.images import load_image
from engine.evaluation.metrics import psnr, top_octave_log_power_gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0,0.5,1")
    parser.add_argument("--images", nargs="*", type=Path,
                        default=sorted(Path("assets/samples").glob("*.png")))
    args = parser.parse_args()
    engine = Engine()
    defaults = engine.info.defaults
    decoders = [d for d in ("flow", "diffusion") if d in engine.decoder_kinds]
    print("| image | rate | bpp | gap AE | " + " | ".join(f"gap {d}" for d in decoders)
          + " | PSNR AE | " + " | ".join(f"PSNR {d}" for d in decoders) + " |")
    print("|" + "---|" * (3 + 2 * (1 + len(decoders))))
    for path in args.images:
        original = load_image(path).rgb
        for rate in (float(r) for r in args.rates.split(",")):
            enc = engine.encode(original, rate=rate)
            unfiltered = engine.decode_ae(enc.data, post_filter=False)  # what the decoders refine
            # as shipped: post-filtered when there is a post-filter (without decoding the file again)
            x_ae = engine.refine(unfiltered, DecodeSettings("ae"), rate=enc.rate)
            refined = [engine.refine(unfiltered, defaults[d], rate=enc.rate, post_filtered=x_ae) for d in decoders]
            gaps = [top_octave_log_power_gap(original, x) for x in (x_ae, *refined)]
            psnrs = [psnr(original, x) for x in (x_ae, *refined)]
            print(f"| {path.stem} | {rate:g} | {enc.bpp:.3f} | " + " | ".join(f"{g:.3f}" for g in gaps)
                  + " | " + " | ".join(f"{p:.2f}" for p in psnrs) + " |", flush=True)


if __name__ == "__main__":
    main()
