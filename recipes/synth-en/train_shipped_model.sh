#!/usr/bin/env bash
# Trains the shipped recogniser models/stochw2v-synth-en from nothing, on one CPU core (or a GPU): a 20 h
# synthetic corpus (espeak-ng + flite voices, the sentence list fortunes gives), stochastic pre-training, then
# stochastic CTC fine-tuning in eight schedules, each continuing the one before's recogniser (CTC head included),
# all with augmentation, with supplements that speak the same train sentences with other voices and engines
# (flite; festival + flite; formant-warped flite + festival; the corpus re-planned with equal engine shares; a
# third draw), then the model folder. Needs festival: `make setup` installs it.
#   OUT=runs/shipped THREADS=1 bash recipes/synth-en/train_shipped_model.sh
# A corpus already there is kept; a stage whose run folder has a checkpoint resumes from it.
set -euo pipefail
OUT=${OUT:-runs/shipped}
HOURS=${HOURS:-20}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-cpu}
PY=${PYTHON:-.venv/bin/python}
text=()
[ -n "${SENTENCES:-}" ] && text=(--sentences "$SENTENCES")

# synth DIR ARGS...: a corpus in OUT/DIR, unless one is there already
synth() {
    local dir="$OUT/$1"; shift
    [ -f "$dir/corpus.json" ] || $PY -m stochw2v synth --out "$dir" --workers 2 "$@"
}
# supplement DIR ARGS...: the train sentences spoken again, flite:slt held out (the test split's flite voice)
supplement() {
    local dir=$1; shift
    synth "$dir" --sentences "$OUT/flite/sentences.txt" --held-out-voices flite:slt "$@"
}
# combine NAME DIR...: one train manifest over the corpora in OUT/DIR...
combine() {
    local name=$1; shift
    local parts=(); for dir in "$@"; do parts+=("$OUT/$dir/train.tsv"); done
    $PY -m stochw2v manifest combine "${parts[@]}" --out "$OUT/$name" --name train
}
# finetune RUN INIT CONFIG TRAIN: a fine-tuning stage in OUT/RUN, resumed if it has a checkpoint
finetune() {
    local resume=(); [ -f "$OUT/$1/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
    $PY -m stochw2v finetune --init "$2" --config "$3" --train "$4" --valid "$OUT/data/valid.tsv" \
        --out "$OUT/$1" --device "$DEVICE" --threads "$THREADS" "${resume[@]}"
}

# --voice-sampling voice: the first corpus was planned before each engine got an equal share (every voice equally
# likely, so flite's 4 voices spoke 0.8% of it); the supplements below make up for that, and this remakes that corpus
# and its test split utterance for utterance
synth data --hours "$HOURS" --engines espeak,flite --seed 1 --valid-utterances 300 --test-utterances 600 \
    --voice-sampling voice "${text[@]}"
resume=(); [ -f "$OUT/pretrain/checkpoints/checkpoint_last.safetensors" ] && resume=(--resume)
$PY -m stochw2v pretrain --config recipes/synth-en/pretrain_shipped.yaml --train "$OUT/data/train.tsv" \
    --valid "$OUT/data/valid.tsv" --out "$OUT/pretrain" --device "$DEVICE" --threads "$THREADS" "${resume[@]}"
finetune finetune "$OUT/pretrain" recipes/synth-en/finetune_shipped.yaml "$OUT/data/train.tsv"
finetune finetune_more "$OUT/finetune/model" recipes/synth-en/finetune_shipped_more.yaml "$OUT/data/train.tsv"

# Stage 4 adds flite speech: the first corpus drew voices over all ~575, so flite's 4 training voices spoke
# 0.8% of it (test CER on flite 0.69). The supplement speaks the train sentences with those 4 voices only
# (flite:slt stays held out for the test split), and both corpora train together.
if [ ! -f "$OUT/flite/sentences.txt" ]; then
    mkdir -p "$OUT/flite"
    tr 'A-Z' 'a-z' < "$OUT/data/train.wrd" | sort -u > "$OUT/flite/sentences.txt"
fi
supplement flite --hours "${FLITE_HOURS:-6}" --engines flite --seed 2 --valid-utterances 20 --test-utterances 20
combine combined data flite
finetune finetune_stage4 "$OUT/finetune_more/model" recipes/synth-en/finetune_shipped_stage4.yaml "$OUT/combined/train.tsv"

# Stage 5 adds a third synthesizer: festival's two diphone voices (and flite's 4 training voices again, drawn
# anew) speak the train sentences.
supplement festival --hours "${FESTIVAL_HOURS:-6}" --engines festival,flite --seed 4 --valid-utterances 40 \
    --test-utterances 40
combine combined5 data flite festival
finetune finetune_stage5 "$OUT/finetune_stage4/model" recipes/synth-en/finetune_shipped_stage5.yaml "$OUT/combined5/train.tsv"

# Stage 7 adds female-like versions of the male flite and festival voices: the train sentences again, with every
# utterance's formants raised 1.05-1.3x at unchanged tempo and F0 (a shorter vocal tract). (Stage 6, a grown
# 6-layer model, was tried and not shipped: recipes/synth-en/finetune_shipped_stage6.yaml.)
supplement warped --hours "${WARPED_HOURS:-5}" --engines flite,festival --seed 5 --valid-utterances 40 \
    --test-utterances 40 --formant-warp 1.05,1.3
combine combined7 combined5 warped
finetune finetune_stage7 "$OUT/finetune_stage5/model" recipes/synth-en/finetune_shipped_stage7.yaml "$OUT/combined7/train.tsv"

# Stage 8 spends half its updates at s=1 (policy.squeeze_weights) on the first corpus, the same sentences and held-out
# voices planned with equal engine shares (new espeak draws; flite's 4 training voices speak half), and 2 h each of
# festival + flite and of formant-warped speech drawn anew.
synth equal_shares --hours "$HOURS" --engines espeak,flite --seed 1 --valid-utterances 300 --test-utterances 600 \
    "${text[@]}"
supplement festival8 --hours 2 --engines festival,flite --seed 8 --valid-utterances 10 --test-utterances 10
supplement warped8 --hours 2 --engines flite,festival --seed 9 --valid-utterances 10 --test-utterances 10 \
    --formant-warp 1.05,1.3
combine combined8 data equal_shares festival8 warped8
finetune finetune_stage8 "$OUT/finetune_stage7/model" recipes/synth-en/finetune_shipped_stage8.yaml "$OUT/combined8/train.tsv"

# Stage 9: a third draw of the train sentences (as written, punctuation included, so espeak-ng pauses as it did) by
# other voices at other rates and pitches, with the test split's voices held out, and festival + flite and
# formant-warped speech drawn anew; stage 8's recipe.
if [ ! -f "$OUT/fresh9/sentences.txt" ]; then
    mkdir -p "$OUT/fresh9"
    $PY -c 'import json, sys
corpus = json.load(open(sys.argv[1]))
print("\n".join(sorted({u["text"] for u in corpus["utterances"] if u["split"] == "train"})))' \
        "$OUT/data/corpus.json" > "$OUT/fresh9/sentences.txt"
fi
held_out=$($PY -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["held_out_voices"]))' \
    "$OUT/data/corpus.json")
synth fresh9 --hours 12 --engines espeak,flite --seed 21 --sentences "$OUT/fresh9/sentences.txt" \
    --held-out-voices "$held_out" --valid-utterances 20 --test-utterances 20
synth festival9 --hours 2 --engines festival,flite --seed 22 --sentences "$OUT/fresh9/sentences.txt" \
    --held-out-voices flite:slt --valid-utterances 10 --test-utterances 10
synth warped9 --hours 2 --engines flite,festival --seed 23 --sentences "$OUT/fresh9/sentences.txt" \
    --held-out-voices flite:slt --valid-utterances 10 --test-utterances 10 --formant-warp 1.05,1.3
combine combined9 data equal_shares fresh9 festival8 warped8 festival9 warped9
finetune finetune_stage9 "$OUT/finetune_stage8/model" recipes/synth-en/finetune_shipped_stage9.yaml "$OUT/combined9/train.tsv"
# stage 10: the same data, less masking and augmentation, s=1 five updates in eight (60 min)
finetune finetune_stage10 "$OUT/finetune_stage9/model" recipes/synth-en/finetune_shipped_stage10.yaml "$OUT/combined9/train.tsv"
# stored in float16: half the 16 MB, and the same test CER (0.149 / 0.183 at s=1 / s=4 on 300 held-out
# utterances, both ways; WER 0.503 vs 0.502), so a new version of the committed weights costs every clone 8 MB
$PY -m stochw2v export "$OUT/finetune_stage10/model" --out "$OUT/model" --dtype float16
