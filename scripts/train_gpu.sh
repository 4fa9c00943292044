#!/usr/bin/env bash
# One time-budgeted training pass on a GPU: continue the shipped autoencoder, then fine-tune
# the diffusion and flow decoders on its outputs, side by side on the same GPU (each is too
# small to fill it alone), told the rate of each output (--condition-on-rate). Rerunning with
# the same RUNS folder resumes every stage.
#
#   scripts/train_gpu.sh [DATA [RUNS [AE_SECONDS [DECODER_SECONDS]]]]
#
# DATA: a folder from `hfd data pack` (already downscaled ≥ 2×, so --downscale 1 here).
# Env: BATCH, CROP (default 32 × 256²), LAMBDA_RANGE (default 0.0001,0.08: ~0.05–1.2 bpp),
# WEIGHTS (starting weights, default assets/weights). Copy RUNS/*/*.safetensors to
# assets/weights to ship them.
set -u
DATA=${1:-data/pack}
RUNS=${2:-runs/gpu}
AE_SECONDS=${3:-1200}
DECODER_SECONDS=${4:-1200}
BATCH=${BATCH:-32}
CROP=${CROP:-256}
LAMBDA_RANGE=${LAMBDA_RANGE:-0.0001,0.08}
WEIGHTS=${WEIGHTS:-assets/weights}
export PYTHONUNBUFFERED=1
mkdir -p "$RUNS"
common=(--data "$DATA" --downscale 1 --steps 10000000 --batch "$BATCH" --crop "$CROP")

# Each stage is also killed 120 s past its budget; its last checkpoint's export then stands.
timeout $((AE_SECONDS + 120)) python3 -m engine.cli train autoencoder "${common[@]}" \
    --out "$RUNS/autoencoder" --init "$WEIGHTS/autoencoder.safetensors" --lambda-range "$LAMBDA_RANGE" \
    --time-limit "$AE_SECONDS" --checkpoint-every 2000 \
    >"$RUNS/autoencoder.out" 2>&1
echo "autoencoder stage exited with $?"
AE=$RUNS/autoencoder/autoencoder.safetensors
if [ ! -f "$AE" ]; then
    echo "no new autoencoder; the decoders train on $WEIGHTS's"
    AE=$WEIGHTS/autoencoder.safetensors
fi

for kind in diffusion flow; do
    timeout $((DECODER_SECONDS + 120)) python3 -m engine.cli train "$kind" "${common[@]}" \
        --out "$RUNS/$kind" --init "$WEIGHTS/$kind.safetensors" --autoencoder "$AE" \
        --time-limit "$DECODER_SECONDS" --checkpoint-every 1000 --condition-on-rate \
        >"$RUNS/$kind.out" 2>&1 &
done
wait
for kind in autoencoder diffusion flow; do
    echo "$kind: $(tail -c 300 "$RUNS/$kind/train.log" 2>/dev/null | tail -n 1)"
done
