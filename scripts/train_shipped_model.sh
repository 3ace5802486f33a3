#!/usr/bin/env bash
# Trains the shipped recogniser models/stochw2v-small-synth on one GPU, from nothing:
# synthetic corpus (espeak-ng + flite voices), stochastic pre-training, stochastic CTC fine-tuning
# (both with augmentation), then a float16 model folder. Each training stage has a wall-clock
# budget (run.max_minutes) that sets its number of updates from the measured speed.
#   OUT=runs/shipped bash scripts/train_shipped_model.sh
set -euo pipefail
OUT=${OUT:-runs/shipped}
HOURS=${HOURS:-20}
WORKERS=${WORKERS:-12}            # data-loader processes per stage
SYNTH_WORKERS=${SYNTH_WORKERS:-16}
PT_MIN=${PT_MIN:-1.8}             # pre-training budget, minutes
FT_MIN=${FT_MIN:-4.6}             # fine-tuning budget, minutes
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
text=()
[ -n "${SENTENCES:-}" ] && text=(--sentences "$SENTENCES")  # the sentence list fortunes gives (make setup)

$PY -m stochw2v synth --out "$OUT/data" --hours "$HOURS" --engines espeak,flite --seed 1 \
    --workers "$SYNTH_WORKERS" --valid-utterances 300 --test-utterances 600 "${text[@]}"
$PY -m stochw2v pretrain --config configs/pretrain_small.yaml --train "$OUT/data/train.tsv" \
    --valid "$OUT/data/valid.tsv" --out "$OUT/pretrain" --device "$DEVICE" \
    --set data.num_workers="$WORKERS" run.max_minutes="$PT_MIN"
$PY -m stochw2v finetune --init "$OUT/pretrain" --config configs/finetune_small.yaml \
    --train "$OUT/data/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune" --device "$DEVICE" \
    --set data.num_workers="$WORKERS" run.max_minutes="$FT_MIN"
$PY -m stochw2v export "$OUT/finetune/model" --out "$OUT/model" --dtype float16
