"""Wall time of the `hfd` commands as a user runs them (fresh process each time: Python start,
imports, weight loading and the work), next to a bare `import torch` measured in the same run,
which is the floor any torch-based CLI pays.

    python benchmarks/bench_cli.py [--image assets/samples/snow_trees.png] [--bpp 0.3] [--repeats 5]
                                   [--out benchmarks/results]

Writes a Markdown table named after the date."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def wall_times(command: list[str], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs after one warm-up run (which fills the file cache)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=Path("assets/samples/snow_trees.png"))
    parser.add_argument("--bpp", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    hfd = [sys.executable, "-m", "engine.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        coded, decoded = Path(tmp) / "image.hfd", Path(tmp) / "image.png"
        cases = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            f"hfd compress --bpp {args.bpp:g}": [*hfd, "compress", str(args.image), str(coded), "--bpp", str(args.bpp)],
            "hfd decompress --decoder ae": [*hfd, "decompress", str(coded), str(decoded), "--decoder", "ae"],
            "hfd decompress (default decoder)": [*hfd, "decompress", str(coded), str(decoded)],
            "hfd decompress --decoder flow": [*hfd, "decompress", str(coded), str(decoded), "--decoder", "flow"],
        }
        rows = []
        for name, command in cases.items():
            times = wall_times(command, args.repeats)
            rows.append(f"| `{name}` | {min(times):.2f} | {statistics.median(times):.2f} | {max(times):.2f} |")
            print(rows[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cli-{date.today().isoformat()}.md"
    path.write_text("\n".join([
        f"# CLI wall time, {date.today().isoformat()}", "",
        f"Image `{args.image}`; {args.repeats} runs each after a warm-up run, every run a fresh process "
        "(Python start, imports, weight loading and the work).", "",
        "| command | min s | median s | max s |", "|---|---|---|---|", *rows, ""]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
