#!/usr/bin/env bash
# One time-budgeted training pass on a GPU: continue the shipped autoencoder (one run per
# learning rate in AE_LRS, side by side, keeping the best by BD-rate against the starting
# weights, or those weights if no run beat them), then fine-tune the autoencoder's post-filter
# on its outputs, then the diffusion and flow decoders on the post-filtered outputs (what the
# Autoencoder pane shows, --post-filtered), told the rate of each output (--condition-on-rate),
# side by side on the same GPU (each is too small to fill it alone). The post-filter comes first
# because the decoders are conditioned on it. Rerunning with the same RUNS folder resumes every
# stage.
#
#   scripts/train_gpu.sh [DATA [RUNS [AE_SECONDS [DECODER_SECONDS [POSTFILTER_SECONDS]]]]]
#
# DATA: a folder from `hfd data pack` (already downscaled ≥ 2×, so --downscale 1 here).
# AE_SECONDS 0 keeps the starting autoencoder and POSTFILTER_SECONDS 0 the starting post-filter,
# so `KINDS=flow scripts/train_gpu.sh data/pack runs/gpu 0 480 0` spends a short lease on the
# flow alone. DECODER_SECONDS 0 skips the post-filter and the decoders: the whole lease goes to the
# autoencoder (the decoders' last two GPU fine-tunes on a newer autoencoder's outputs were
# measured and not kept). The post-filter and the decoders learn one autoencoder's errors: a
# new autoencoder needs them fine-tuned too (`hfd train postfilter --init
# assets/weights/postfilter.safetensors --autoencoder NEW`, then `hfd train diffusion|flow
# --init assets/weights/KIND.safetensors --autoencoder NEW --post-filtered NEW_POSTFILTER`),
# about an hour each on a CPU. POSTFILTER_SECONDS defaults to DECODER_SECONDS / 2.
# Env: KINDS (the decoders to train, default "diffusion flow"), BATCH, CROP (default 32 × 256²),
# AE_LRS (default "2e-4"), AE_FLAGS (extra autoencoder flags; default none, so the starting
# weights continue with their own λ range, gain levels and context model; e.g.
# "--add-context" for weights without one), WEIGHTS (starting
# weights, default assets/weights), GRACE (seconds a stage may run past its budget before it
# is killed, default 120: it must cover loading and the last checkpoint's export and
# validation, which took over 35 s on an H100 with two autoencoder runs validating at once;
# twice a GRACE of 30–35 s lost the final, annealed export). Copy RUNS/*/*.safetensors to
# assets/weights to ship them.
set -u
DATA=${1:-data/pack}
RUNS=${2:-runs/gpu}
AE_SECONDS=${3:-1200}
DECODER_SECONDS=${4:-1200}
POSTFILTER_SECONDS=${5:-$((DECODER_SECONDS / 2))}
BATCH=${BATCH:-32}
CROP=${CROP:-256}
AE_LRS=${AE_LRS:-2e-4}
# Not --lambda-range by default: the shipped model's λ range was extended past any fixed one,
# and resetting it would move every rate of the model.
AE_FLAGS=${AE_FLAGS-}
WEIGHTS=${WEIGHTS:-assets/weights}
GRACE=${GRACE:-120}
KINDS=${KINDS:-diffusion flow}
export PYTHONUNBUFFERED=1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
mkdir -p "$RUNS"
common=(--data "$DATA" --downscale 1 --steps 10000000 --batch "$BATCH" --crop "$CROP")

# Each stage is also killed GRACE s past its budget; its last checkpoint's export then stands.
candidates=()
[ "$AE_SECONDS" -le 0 ] && AE_LRS=""
for lr in $AE_LRS; do
    # shellcheck disable=SC2086  # AE_FLAGS is a list of flags
    timeout $((AE_SECONDS + GRACE)) python3 -m engine.cli train autoencoder "${common[@]}" \
        --out "$RUNS/autoencoder-lr$lr" --init "$WEIGHTS/autoencoder.safetensors" --lr "$lr" $AE_FLAGS \
        --time-limit "$AE_SECONDS" --checkpoint-every 2000 \
        >"$RUNS/autoencoder-lr$lr.out" 2>&1 &
    candidates+=("$RUNS/autoencoder-lr$lr/autoencoder.safetensors")
done
wait
AE=$WEIGHTS/autoencoder.safetensors
if [ ${#candidates[@]} -gt 0 ]; then
    AE=$(python3 scripts/pick_autoencoder.py "$WEIGHTS/autoencoder.safetensors" "${candidates[@]}")
    AE=${AE:-$WEIGHTS/autoencoder.safetensors}
fi
if [ "$DECODER_SECONDS" -le 0 ]; then
    echo "autoencoder: $AE (decoders skipped)"
    exit 0
fi
echo "the decoders train on $AE"

# The post-filter starts from the shipped one, or else from the flow decoder; it is always
# rate-conditioned.
POSTFILTER=$WEIGHTS/postfilter.safetensors
if [ "$POSTFILTER_SECONDS" -gt 0 ]; then
    init=$WEIGHTS/postfilter.safetensors
    [ -f "$init" ] || init=$WEIGHTS/flow.safetensors
    timeout $((POSTFILTER_SECONDS + GRACE)) python3 -m engine.cli train postfilter "${common[@]}" \
        --out "$RUNS/postfilter" --init "$init" --autoencoder "$AE" \
        --time-limit "$POSTFILTER_SECONDS" --checkpoint-every 1000 \
        >"$RUNS/postfilter.out" 2>&1
    [ -f "$RUNS/postfilter/postfilter.safetensors" ] && POSTFILTER=$RUNS/postfilter/postfilter.safetensors
fi
echo "the decoders refine the output of $POSTFILTER"

for kind in $KINDS; do
    timeout $((DECODER_SECONDS + GRACE)) python3 -m engine.cli train "$kind" "${common[@]}" \
        --out "$RUNS/$kind" --init "$WEIGHTS/$kind.safetensors" --autoencoder "$AE" \
        --post-filtered "$POSTFILTER" --condition-on-rate \
        --time-limit "$DECODER_SECONDS" --checkpoint-every 1000 \
        >"$RUNS/$kind.out" 2>&1 &
done
wait
for log in "$RUNS"/*/train.log; do
    echo "$log: $(grep validation "$log" | tail -n 1)"
done
