"""Fuzz the whole decode with crafted .hfd files that pass the file CRC, and count the outcomes.

    python benchmarks/fuzz_decoder.py --files 5000 [--weights DIR] [--out benchmarks/results/fuzz-decoder.md]

Each file is a valid file of a photo (several photos and rates) altered by one of
engine.testing.MUTATIONS with its file CRC recomputed, then decoded by the autoencoder path
(entropy decoding, payload checksum, synthesis, post-filter). Every outcome must be a refusal
with the project's own one-line error, or the original's exact pixels; "other exception" and
"other pixels" must stay at zero. Without --weights it runs tiny random weights with a context
model (fast, every code path); with them, the shipped weights on 128×96 crops."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from engine.api import Engine
from engine.errors import HfdError
from engine.testing import MUTATIONS, craft_hfd, write_tiny_weights

ROOT = Path(__file__).resolve().parents[1]


def photos() -> list[np.ndarray]:
    from engine.codec.images import load_image

    crops = []
    for path in sorted((ROOT / "assets" / "samples").glob("*.png")):
        rgb = load_image(path).rgb
        crops += [rgb[:96, :128], rgb[-96:, -128:]]
    return crops


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or write_tiny_weights(Path(tmp), context=True, post_filter=True)
        engine = Engine(weights, device="cpu")
        sources = [(data, engine.decode_ae(data)) for rgb in photos() for rate in (0.2, 0.6, 0.9)
                   for data in [engine.encode(rgb, rate=rate).data]]
        rng = np.random.default_rng(args.seed)
        outcomes: Counter = Counter()
        messages: Counter = Counter()
        times = []
        for i in range(args.files):
            original, expected = sources[rng.integers(len(sources))]
            kind, crafted = craft_hfd(original, rng)
            start = time.perf_counter()
            try:
                decoded = engine.decode_ae(crafted)
            except HfdError as exc:
                outcome = "refused"
                messages[str(exc).split(":")[0].split("(")[0].strip()] += 1
            except Exception as exc:  # noqa: BLE001 — what the run exists to find
                outcome = "other exception"
                messages[f"{type(exc).__name__}: {exc}"] += 1
            else:
                outcome = "same pixels" if np.array_equal(decoded, expected) else "other pixels"
            times.append(time.perf_counter() - start)
            outcomes[(kind, outcome)] += 1
            if (i + 1) % 500 == 0:
                print(f"{i + 1} files", flush=True)
    columns = ("refused", "same pixels", "other exception", "other pixels")
    lines = [f"{args.files} crafted files ({'weights ' + str(args.weights) if args.weights else 'tiny weights, context model'}, "
             f"{len(sources)} source files, seed {args.seed}); decode time median "
             f"{np.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms.", "",
             "| mutation | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for kind in MUTATIONS:
        lines.append(f"| {kind} | " + " | ".join(str(outcomes[(kind, c)]) for c in columns) + " |")
    lines.append("| all | " + " | ".join(str(sum(n for (_, o), n in outcomes.items() if o == c)) for c in columns) + " |")
    lines += ["", "| refusal (first words) | files |", "|---|---|"]
    lines += [f"| {message} | {n} |" for message, n in messages.most_common()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    bad = sum(n for (_, o), n in outcomes.items() if o in ("other exception", "other pixels"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
