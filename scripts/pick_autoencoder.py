"""Pick the best of several autoencoder runs by BD-rate (PSNR) against their starting weights,
from the validation each export carries (the same centre crops for every run).

    python3 scripts/pick_autoencoder.py INIT CANDIDATE...

Prints each candidate's BD-rate over the validation rates 0.25–0.75 (the 0.1–0.8 bpp range
the release is judged on), then, on the last line, the path of the best candidate, or INIT
when none needs fewer bits than it: a fine-tune that made things worse is never picked.
Candidates that are missing or carry no validation are skipped; INIT must carry one."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import HfdError
from engine.evaluation.metrics import bd_rate
from engine.weights import read_metadata

RATES = ("0.25", "0.5", "0.75")


def curve(path: Path) -> tuple[list[float], list[float]]:
    validation = read_metadata(path)[2].get("validation") or {}
    if not all(f"bpp@{r}" in validation for r in RATES):
        raise HfdError(f"{path} carries no validation at rates {', '.join(RATES)}")
    return [validation[f"bpp@{r}"] for r in RATES], [validation[f"psnr@{r}"] for r in RATES]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    init, candidates = Path(argv[0]), [Path(p) for p in argv[1:]]
    reference = curve(init)
    best, best_delta = init, 0.0
    for path in candidates:
        if not path.is_file():
            print(f"{path}: missing", file=sys.stderr)
            continue
        try:
            delta = bd_rate(*reference, *curve(path))
        except HfdError as error:  # e.g. killed before its first validation
            print(f"{path}: skipped ({error})", file=sys.stderr)
            continue
        print(f"{path}: BD-rate {delta:+.2f} % against {init}", file=sys.stderr)
        if delta < best_delta:
            best, best_delta = path, delta
    print(best)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
