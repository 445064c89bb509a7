#!/usr/bin/env bash
# scripts/deps.sh [bench] - install the Debian packages the build and tests need.
#
# Idempotent: packages already installed are skipped (checked with dpkg-query),
# and `apt-get update` runs only when something is missing.  With the argument
# `bench`, the benchmark dependencies (Go, wrk) are added.  Not root: uses sudo when
# available, else prints what to install and fails.
set -euo pipefail

# Build and test dependencies (`make test`).
PKGS=(
    cmake gcc clang make pkg-config
    valgrind gdb
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    libclang-rt-14-dev
    node-llhttp libwslay-dev libssl-dev curl
)
# `make bench` only.
BENCH_PKGS=(golang-go wrk)

for arg in "$@"; do
    case "$arg" in
    bench) PKGS+=("${BENCH_PKGS[@]}") ;;
    test | all) ;;
    *)
        echo "usage: $0 [bench]" >&2
        exit 2
        ;;
    esac
done

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PKGS[@]} packages present"
    exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "deps: missing packages and not root (no usable sudo); run as root:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
    -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
"${APT[@]}" update -qq
"${APT[@]}" install -qq --no-install-recommends "${missing[@]}" >/dev/null

still=()
for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
done
if ((${#still[@]})); then
    echo "deps: failed to install: ${still[*]}" >&2
    exit 1
fi
echo "deps: installed ${missing[*]}"
