#!/usr/bin/env bash
# Regenerate every committed report of the current release (reports/README.md says what each is):
# the evaluation on the validation and the held-out test photos, and the sweeps that chose the
# decode defaults. Each `hfd eval` resumes where it stopped and measures again only the decoders
# whose weights or defaults changed (--remeasure-changed); delete a folder to measure it anew.
#
#   scripts/make_reports.sh [PACK [REPORTS]]
#
# PACK: a folder from `hfd data pack data/photos PACK --max-side 768` (default data/pack).
set -euo pipefail
PACK=${1:-data/pack}
OUT=${2:-reports}
BPPS=0.1,0.2,0.4                    # the committed runs; 0.05 and 0.8 are appended by adding them here
DECODERS=ae,diffusion,flow          # each at its default settings (hfd model lists them)
BASELINES=jpeg,webp,avif,avif@2x     # avif@2x: AVIF at twice the bytes of the .hfd file

hfd eval --images "$PACK/val" --out "$OUT/validation" --bpp "$BPPS" --decoders "$DECODERS" --baselines "$BASELINES" --crops 0 --remeasure-changed
hfd eval --images "$PACK/test" --out "$OUT/test" --bpp "$BPPS" --decoders "$DECODERS" --baselines "$BASELINES" --crops 0 --remeasure-changed

# The sweeps behind the defaults: every decoder on the validation photos at 0.1 bpp, one setting at
# a time around the defaults (steps 1-32: how the decode changes with more steps). Add realism and
# noise to the inner list for those sweeps (not run for this release).
for decoder in diffusion flow; do
    for sweep in steps; do
        hfd eval --images "$PACK/val" --out "$OUT/sweeps/$decoder-$sweep" --bpp 0.1 --decoders "ae,$decoder" \
            --baselines "" --crops 0 --remeasure-changed --sweep "$sweep" --sweep-bpp 0.1 \
            $( [ "$sweep" = steps ] && echo "--sweep-values 1,2,4,8,16,32" )
    done
done
