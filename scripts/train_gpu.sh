#!/usr/bin/env bash
# One time-budgeted pass on a GPU for the current training goal, the realism of the refined decode:
# the realism phase of the diffusion and the flow recipes (assets/recipes/*.toml), continued from
# the shipped weights, side by side on the same GPU (each is too small to fill it alone). Rerunning
# with the same RUNS folder resumes both.
#
#   scripts/train_gpu.sh [DATA [RUNS [SECONDS]]]
#
# DATA: a folder from `hfd data pack` (default data/pack); SECONDS: each decoder's budget (default
# 480; the learning rate anneals over it). Env: KINDS (default "diffusion flow"), WEIGHTS (what the
# runs continue, default assets/weights), GRACE (seconds a run may go past its budget before it is
# killed, default 120: loading, the last checkpoint's export and its validation). The exports are
# RUNS/KIND/realism/KIND.safetensors: evaluate them, then copy them to assets/weights to ship them.
set -u
DATA=${1:-data/pack}
RUNS=${2:-runs/gpu}
SECONDS_EACH=${3:-480}
KINDS=${KINDS:-diffusion flow}
WEIGHTS=${WEIGHTS:-assets/weights}
GRACE=${GRACE:-120}
export PYTHONUNBUFFERED=1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
mkdir -p "$RUNS"
for kind in $KINDS; do
    timeout $((SECONDS_EACH + GRACE)) python3 -m engine.cli train "assets/recipes/$kind.toml" --phase realism \
        --from "$WEIGHTS/$kind.safetensors" --data "$DATA" --out "$RUNS" --time-limit "$SECONDS_EACH" \
        >"$RUNS/$kind.out" 2>&1 &
done
wait
for kind in $KINDS; do
    echo "$kind: $(grep -s validation "$RUNS/$kind/realism/train.log" | tail -n 1)"
done
