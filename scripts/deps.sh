#!/usr/bin/env bash
# scripts/deps.sh [bench] [windows] - install the Debian packages the build and tests need.
#
# Idempotent: packages already installed are skipped (checked with dpkg-query),
# and `apt-get update` runs only when something is missing.  With the argument
# `bench`, the benchmark dependencies (Go, wrk) are added.  The mingw-w64 cross
# compiler and wine64 of the win stage are in the default set (`windows`, the
# argument that used to add them, is still accepted).
# Not root: uses sudo when available, else prints what to install and fails.
#
# The servers (redis-server, PostgreSQL 15, MariaDB) are for tests/servers/,
# which starts private instances in temporary directories.  Installing them
# must not start the system services nor create PostgreSQL's 15/main cluster:
# a temporary /usr/sbin/policy-rc.d (exit 101) keeps invoke-rc.d from starting
# anything (an existing one, as Debian container images ship, is left alone),
# and a fresh postgresql-common finds create_main_cluster = false in
# /etc/postgresql-common/createcluster.conf.
set -euo pipefail

# Build and test dependencies (`make test`).
PKGS=(
    cmake gcc clang make pkg-config
    valgrind gdb
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    libclang-rt-14-dev
    node-llhttp libwslay-dev libssl-dev curl
    # real servers and their client libraries (tests/servers, tests/real)
    redis-server redis-tools postgresql-15 postgresql-client-15 mariadb-server
    libhiredis-dev libpq-dev libcurl4-openssl-dev libmariadb-dev
    # libmay_http's tests and the TechEmpower app (apps/techempower):
    # a JSON library, third-party clients (ab -k, python3-websockets)
    libjansson-dev apache2-utils python3-websockets
    # the win stage: the mingw-w64 cross compiler, and wine64 to run its
    # programs (docs/WINDOWS.md)
    gcc-mingw-w64-x86-64 wine64
)
# `make bench` only.
BENCH_PKGS=(golang-go wrk
    golang-github-gomodule-redigo-dev golang-github-jackc-pgx-v4-dev)

for arg in "$@"; do
    case "$arg" in
    bench) PKGS+=("${BENCH_PKGS[@]}") ;;
    windows) ;; # in the default set since the win stage (kept for old commands)
    test | all) ;;
    *)
        echo "usage: $0 [bench] [windows]" >&2
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

# No service starts during the install (see the top); the temporary policy
# goes on every exit path.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
    trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
    printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
fi
CCCONF=/etc/postgresql-common/createcluster.conf
if ! installed postgresql-common && [[ ! -e $CCCONF ]]; then
    "${SUDO[@]}" mkdir -p "${CCCONF%/*}"
    echo "create_main_cluster = false" | "${SUDO[@]}" tee "$CCCONF" >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
# UCF_FORCE_CONFFOLD: postgresql-common keeps the createcluster.conf above.
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1
    apt-get -q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300
    -o Dpkg::Options::=--force-confold)
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
