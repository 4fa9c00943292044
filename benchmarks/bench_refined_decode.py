"""Engine time of the refined decodes of one 768×512 file: each decoder at its defaults and at one
step, with the engine loaded once (what the app pays per decode; `bench_cli.py` times whole
commands, Python start and weight loading included).

    python benchmarks/bench_refined_decode.py [--image assets/samples/garden.png] [--bpp 0.1] [--repeats 5]

Each figure is the whole decode of the .hfd file: entropy decoding, synthesis, the post-filter and
the decoder's steps; min / median / max over the repeats after one warm-up."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from engine.api import Engine, load_image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=Path, default=Path("assets/samples/garden.png"))
    p.add_argument("--bpp", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    engine = Engine()
    rgb = load_image(args.image).rgb
    encoded = engine.encode(rgb, bpp=args.bpp)
    rows = []
    for decoder in ("ae", *engine.decoder_kinds):
        defaults = engine.settings_for(decoder, encoded.rate)
        cases = [("defaults", defaults)] + ([("1 step", replace(defaults, steps=1))] if decoder != "ae" else [])
        for name, settings in cases:
            times = []
            for i in range(args.repeats + 1):
                start = time.perf_counter()
                engine.decode(encoded.data, settings)
                if i:
                    times.append(time.perf_counter() - start)
            label = f"{decoder}, {name}" + (f" ({settings.steps} step{'' if settings.steps == 1 else 's'})" if decoder != "ae" and name == "defaults" else "")
            rows.append(f"| {label} | {min(times):.2f} | {statistics.median(times):.2f} | {max(times):.2f} |")
            print(rows[-1], flush=True)
    h, w = rgb.shape[:2]
    text = "\n".join([f"`python benchmarks/bench_refined_decode.py --image {args.image} --bpp {args.bpp:g}`: "
                      f"{w}×{h}, a {encoded.nbytes}-byte file ({encoded.bpp:.3f} bpp), engine loaded once, "
                      f"{args.repeats} decodes each after a warm-up.", "",
                      "| decode | min s | median s | max s |", "|---|---|---|---|", *rows, ""])
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
