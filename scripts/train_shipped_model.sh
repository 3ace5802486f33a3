#!/usr/bin/env bash
# Trains the shipped recogniser models/stochw2v-synth-en from nothing, on one CPU core (or a GPU):
# a 20 h synthetic corpus (espeak-ng + flite voices, the sentence list fortunes gives), stochastic
# pre-training and stochastic CTC fine-tuning in six schedules (each continues the one before's
# recogniser, head included), all with augmentation, with supplements (flite, then festival + flite,
# then both again with raised formants, then the corpus replanned with equal engine shares and fresh
# festival and warped draws), then the model folder. Needs festival: `make setup` installs it.
#   OUT=runs/shipped THREADS=1 bash scripts/train_shipped_model.sh
# A stage whose run folder has a checkpoint resumes from it.
set -euo pipefail
OUT=${OUT:-runs/shipped}
HOURS=${HOURS:-20}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-cpu}
PY=${PYTHON:-.venv/bin/python}
text=()
[ -n "${SENTENCES:-}" ] && text=(--sentences "$SENTENCES")

# --voice-sampling voice: the first corpus was planned before each engine got an equal share (every voice equally
# likely, so flite's 4 voices spoke 0.8% of it); the supplements below make up for that, and this remakes that corpus
# and its test split utterance for utterance
[ -f "$OUT/data/corpus.json" ] || $PY -m stochw2v synth --out "$OUT/data" --hours "$HOURS" --engines espeak,flite \
    --seed 1 --workers 2 --valid-utterances 300 --test-utterances 600 --voice-sampling voice "${text[@]}"
resume=(); [ -f "$OUT/pretrain/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v pretrain --config configs/pretrain_shipped.yaml --train "$OUT/data/train.tsv" \
    --valid "$OUT/data/valid.tsv" --out "$OUT/pretrain" --device "$DEVICE" --threads "$THREADS" "${resume[@]}"
resume=(); [ -f "$OUT/finetune/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/pretrain" --config configs/finetune_shipped.yaml \
    --train "$OUT/data/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
resume=(); [ -f "$OUT/finetune_more/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/finetune/model" --config configs/finetune_shipped_more.yaml \
    --train "$OUT/data/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune_more" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
# Stage 4 adds flite speech: the first corpus drew voices over all ~575, so flite's 4 training voices spoke
# 0.8% of it (test CER on flite 0.69). The supplement speaks the train sentences with those 4 voices only
# (flite:slt stays held out for the test split), and both corpora train together.
if [ ! -f "$OUT/flite/corpus.json" ]; then
    mkdir -p "$OUT/flite"
    tr 'A-Z' 'a-z' < "$OUT/data/train.wrd" | sort -u > "$OUT/flite/sentences.txt"
    $PY -m stochw2v synth --out "$OUT/flite" --hours "${FLITE_HOURS:-6}" --engines flite --seed 2 --workers 2 \
        --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt --valid-utterances 20 --test-utterances 20
fi
$PY -m stochw2v manifest combine "$OUT/data/train.tsv" "$OUT/flite/train.tsv" --out "$OUT/combined" --name train
resume=(); [ -f "$OUT/finetune_stage4/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/finetune_more/model" --config configs/finetune_shipped_stage4.yaml \
    --train "$OUT/combined/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune_stage4" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
# Stage 5 adds a third synthesizer: festival's two diphone voices (and flite's 4 training voices again, drawn
# anew) speak the train sentences; flite:slt stays held out.
if [ ! -f "$OUT/festival/corpus.json" ]; then
    $PY -m stochw2v synth --out "$OUT/festival" --hours "${FESTIVAL_HOURS:-6}" --engines festival,flite --seed 4 \
        --workers 2 --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt --valid-utterances 40 \
        --test-utterances 40
fi
$PY -m stochw2v manifest combine "$OUT/data/train.tsv" "$OUT/flite/train.tsv" "$OUT/festival/train.tsv" \
    --out "$OUT/combined5" --name train
resume=(); [ -f "$OUT/finetune_stage5/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/finetune_stage4/model" --config configs/finetune_shipped_stage5.yaml \
    --train "$OUT/combined5/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune_stage5" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
# Stage 7 adds female-like versions of the male flite and festival voices: the train sentences again, with every
# utterance's formants raised 1.05-1.3x at unchanged tempo and F0 (a shorter vocal tract); flite:slt stays held
# out. (Stage 6, a grown 6-layer model, was tried and not shipped: configs/finetune_shipped_stage6.yaml.)
if [ ! -f "$OUT/warped/corpus.json" ]; then
    $PY -m stochw2v synth --out "$OUT/warped" --hours "${WARPED_HOURS:-5}" --engines flite,festival --seed 5 \
        --workers 2 --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt --valid-utterances 40 \
        --test-utterances 40 --formant-warp 1.05,1.3
fi
$PY -m stochw2v manifest combine "$OUT/combined5/train.tsv" "$OUT/warped/train.tsv" --out "$OUT/combined7" --name train
resume=(); [ -f "$OUT/finetune_stage7/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/finetune_stage5/model" --config configs/finetune_shipped_stage7.yaml \
    --train "$OUT/combined7/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune_stage7" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
# Stage 8 spends half its updates at s=1 (policy.squeeze_weights) on the first corpus, the same sentences and held-out
# voices planned with equal engine shares (new espeak draws; flite's 4 training voices speak half), and 2 h each of
# festival + flite and of formant-warped speech drawn anew.
if [ ! -f "$OUT/equal_shares/corpus.json" ]; then
    $PY -m stochw2v synth --out "$OUT/equal_shares" --hours "$HOURS" --engines espeak,flite --seed 1 --workers 2 \
        --valid-utterances 300 --test-utterances 600 "${text[@]}"
fi
if [ ! -f "$OUT/festival8/corpus.json" ]; then
    $PY -m stochw2v synth --out "$OUT/festival8" --hours 2 --engines festival,flite --seed 8 --workers 2 \
        --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt --valid-utterances 10 --test-utterances 10
fi
if [ ! -f "$OUT/warped8/corpus.json" ]; then
    $PY -m stochw2v synth --out "$OUT/warped8" --hours 2 --engines flite,festival --seed 9 --workers 2 \
        --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt --valid-utterances 10 --test-utterances 10 \
        --formant-warp 1.05,1.3
fi
$PY -m stochw2v manifest combine "$OUT/data/train.tsv" "$OUT/equal_shares/train.tsv" "$OUT/festival8/train.tsv" \
    "$OUT/warped8/train.tsv" --out "$OUT/combined8" --name train
resume=(); [ -f "$OUT/finetune_stage8/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v finetune --init "$OUT/finetune_stage7/model" --config configs/finetune_shipped_stage8.yaml \
    --train "$OUT/combined8/train.tsv" --valid "$OUT/data/valid.tsv" --out "$OUT/finetune_stage8" --device "$DEVICE" \
    --threads "$THREADS" "${resume[@]}"
$PY -m stochw2v export "$OUT/finetune_stage8/model" --out "$OUT/model"
