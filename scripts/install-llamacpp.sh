#!/bin/sh
# install-llamacpp.sh — installs llama.cpp's prebuilt CPU binaries from the npm
# package node-llama-cpp (no build from source) and builds the benchmark driver
# bench/llamacpp_bench.c against them, for `orion bench decode --vs-llamacpp`.
#
# How: `npm pack` fetches two tarballs without running any install script:
#   node-llama-cpp              — carries llama/llama.cpp.info.json (the llama.cpp
#                                 release its binaries were built from) and
#                                 llama/gitRelease.bundle (that release's source
#                                 as a git bundle: we take only the headers);
#   @node-llama-cpp/linux-x64   — bins/linux-x64/: libllama, libggml, libggml-base
#                                 and one libggml-cpu-*.so per CPU level, picked at
#                                 run time by ggml_backend_load_all_from_path.
# Result, under bench/peers/ (ignored by git, never committed):
#   bench/peers/llamacpp/lib/       the shared libraries (+ libllama.so links)
#   bench/peers/llamacpp/include/   llama.h and the ggml headers of that release
#   bench/peers/llamacpp/bin/llamacpp_bench
#   bench/peers/llamacpp/VERSION    package version and llama.cpp release
# The driver's --check run then verifies that the header matches the library
# (the default parameters must come back sane).
#
# Usage: sh scripts/install-llamacpp.sh [--force]   (--force: fetch again even if installed)
# Environment: NODE_LLAMA_CPP_VERSION (default below), CC (default gcc).
set -eu

VERSION="${NODE_LLAMA_CPP_VERSION:-3.22.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="$ROOT/bench/peers"
DEST="$PEERS/llamacpp"
CC="${CC:-gcc}"

case "$(uname -m)" in
    x86_64) PLATFORM=linux-x64 ;;
    aarch64) PLATFORM=linux-arm64 ;;
    *) echo "install-llamacpp: no prebuilt llama.cpp for $(uname -m)" >&2; exit 1 ;;
esac

build_driver() {
    mkdir -p "$DEST/bin"
    echo "install-llamacpp: building the driver"
    "$CC" -O2 -std=c11 -Wall -Wextra -D_GNU_SOURCE -DORION_LLAMACPP_DRIVER -I"$DEST/include" \
        "$ROOT/bench/llamacpp_bench.c" -o "$DEST/bin/llamacpp_bench" \
        -L"$DEST/lib" -lllama -lggml -lggml-base -Wl,-rpath,'$ORIGIN/../lib'
    "$DEST/bin/llamacpp_bench" --check >/dev/null
}

# Already there: rebuild the driver only (its source may have changed).
if [ "${1:-}" != "--force" ] && [ -e "$DEST/lib/libllama.so" ] && [ -f "$DEST/include/llama.h" ] && \
   grep -q "^node-llama-cpp $VERSION\$" "$DEST/VERSION" 2>/dev/null; then
    build_driver
    echo "install-llamacpp: node-llama-cpp $VERSION already installed in $DEST; driver rebuilt"
    exit 0
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need npm || ! need git || ! need "$CC"; then
    echo "install-llamacpp: installing nodejs, npm, git, gcc from Debian" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm git gcc >/dev/null
fi

WORK="$PEERS/.work"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

echo "install-llamacpp: fetching node-llama-cpp@$VERSION and @node-llama-cpp/$PLATFORM@$VERSION"
(cd "$WORK" && npm pack --silent "node-llama-cpp@$VERSION" "@node-llama-cpp/$PLATFORM@$VERSION" >/dev/null)
mkdir -p "$WORK/main" "$WORK/bins"
tar -xzf "$WORK/node-llama-cpp-$VERSION.tgz" -C "$WORK/main"
tar -xzf "$WORK/node-llama-cpp-$PLATFORM-$VERSION.tgz" -C "$WORK/bins"

BINS="$WORK/bins/package/bins/$PLATFORM"
[ -d "$BINS" ] || { echo "install-llamacpp: $BINS not in the package" >&2; exit 1; }
RELEASE="$(sed -n 's/.*"tag"[^"]*"\([^"]*\)".*/\1/p' "$WORK/main/package/llama/llama.cpp.info.json")"
BUNDLE="$WORK/main/package/llama/gitRelease.bundle"
[ -f "$BUNDLE" ] || { echo "install-llamacpp: the package has no llama.cpp source bundle: write the prototypes by hand" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$DEST/lib" "$DEST/include" "$DEST/bin"
cp "$BINS"/*.so "$DEST/lib/"
# Link names for -lllama / -lggml (the libraries carry versioned sonames).
for base in llama ggml; do
    real="$(cd "$DEST/lib" && ls lib$base.v*.so 2>/dev/null | head -n 1 || true)"
    [ -n "$real" ] && ln -sf "$real" "$DEST/lib/lib$base.so"
done
[ -e "$DEST/lib/libllama.so" ] || { echo "install-llamacpp: no libllama in $BINS" >&2; exit 1; }

# Headers of the exact release the binaries were built from.
git clone -q --bare "$BUNDLE" "$WORK/src.git"
git -C "$WORK/src.git" archive HEAD include ggml/include | tar -x -C "$WORK"
cp "$WORK"/include/*.h "$WORK"/ggml/include/*.h "$DEST/include/"

build_driver
printf 'node-llama-cpp %s\nllama.cpp %s\n' "$VERSION" "$RELEASE" > "$DEST/VERSION"
echo "install-llamacpp: llama.cpp $RELEASE (node-llama-cpp $VERSION) in $DEST"
echo "install-llamacpp: driver $DEST/bin/llamacpp_bench"
