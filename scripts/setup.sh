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
PACKAGES="gcc libc6-dev make cmake pkg-config libcmocka-dev libcjson-dev python3 python3-numpy python3-torch python3-sentencepiece clang libclang-rt-14-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

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
