#!/usr/bin/env bash
# scripts/wine-run.sh CMD [ARGS...] - run CMD with a private wine64 set up
# for it, and tear it down whatever CMD does (issue 14; docs/WINDOWS.md).
#
# A fresh WINEPREFIX in a temporary directory (made by wineboot, about 5-10
# s), one wineserver for the whole of CMD (`wineserver -p`: each program
# then starts in well under a second instead of starting a server of its
# own), WINEDEBUG=-all; MAY_WINE_READY=1 tells a nested script (win-test.sh)
# that the prefix and server are there.  On every exit path, a failing CMD or a signal
# included, the server is killed (`wineserver -k`) and the prefix removed.
# Exits with CMD's status.  Used by scripts/stage.sh win (ctest under wine)
# and scripts/win-test.sh (the platform layer's own test programs).
set -euo pipefail
command -v wine >/dev/null && command -v wineserver >/dev/null || {
    echo "wine-run: wine not found; run: bash scripts/deps.sh windows" >&2
    exit 2
}
WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/may-wine.XXXXXX")
export WINEPREFIX WINEDEBUG=-all MAY_WINE_READY=1
cleanup() {
    wineserver -k 2>/dev/null || true
    rm -rf "$WINEPREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wineserver -p
start=$SECONDS
# The first wine makes the prefix; its complaints (no 32-bit wine for
# syswow64) say nothing about the programs.
wineboot -i >/dev/null 2>&1 || true
echo "wine-run: $(wine --version 2>/dev/null), prefix ready in $((SECONDS - start)) s"
set +e
"$@"
rc=$?
set -e
exit $rc
