#!/usr/bin/env bash
# scripts/install-test.sh [BUILD_DIR] - install a configured build (default
# build/debug) into a fresh temporary prefix, then build and run the consumer
# in tests/install against it twice:
#   1. with CMake: find_package(may) + may::may (CMAKE_PREFIX_PATH=prefix);
#   2. with pkg-config --cflags --libs may (PKG_CONFIG_PATH into the prefix),
#      linked to the shared library and run with LD_LIBRARY_PATH;
# and the same two ways a consumer of libmay_hook (may::hook, may_hook.pc),
# whose blocking read must park, and one of libmay_http (may::http,
# may_http.pc) when the build has it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build/debug}" && pwd)
CC=${CC:-cc}

if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    echo "install-test: $BUILD is not a configured build (run make test or the debug stage first)" >&2
    exit 1
fi
targets=(may_static may_shared may_hook)
http=0
if [[ -d $BUILD/http/CMakeFiles ]]; then # configured with libmay_http
    http=1
    targets+=(may_http_static may_http_shared)
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "--- cmake --install $BUILD --prefix $prefix"
cmake --install "$BUILD" --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log"; exit 1; }
(cd "$prefix" && find . -type f -o -type l | sort | sed 's|^\./|    |')

fail() {
    echo "install-test: FAILED: $*" >&2
    exit 1
}

pcdir=$(dirname "$(find "$prefix" -name may.pc -print -quit)")
[[ -f $pcdir/may.pc ]] || fail "may.pc not installed"
libdir=$(dirname "$(find "$prefix" -name 'libmay.so' -print -quit)")
[[ -f $libdir/libmay.so ]] || fail "libmay.so not installed"
[[ -f $libdir/libmay.a ]] || fail "libmay.a not installed next to libmay.so"
[[ -f $prefix/include/may.h ]] || fail "include/may.h not installed"
gdbpy=$(find "$prefix" -path '*/share/may/gdb/may-gdb.py' -print -quit)
[[ -n $gdbpy ]] || fail "share/may/gdb/may-gdb.py not installed"
find "$prefix" -path '*/gdb/auto-load/*' -name 'libmay.so.*-gdb.py' | grep . >/dev/null ||
    fail "the gdb auto-load copy (share/gdb/auto-load/<libdir>/libmay.so.<version>-gdb.py) not installed"
python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$gdbpy" ||
    fail "$gdbpy is not valid Python"

# Only the public may_* API should be exported from the shared library.
extra=$(nm -D --defined-only "$libdir/libmay.so" | awk '{print $3}' |
    grep -v -E '^(may_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
if [[ -n $extra ]]; then
    echo "install-test: warning: libmay.so exports non-may_* symbols:" "${extra//$'\n'/ }" >&2
fi

echo "--- consumer via CMake find_package(may)"
cmake -S "$ROOT/tests/install" -B "$work/cmake-build" -Wno-dev \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$CC" \
    >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/cmake-build" >"$work/build.log" ||
    { cat "$work/build.log"; exit 1; }
"$work/cmake-build/may_consumer" || fail "CMake consumer"
LD_LIBRARY_PATH=$libdir "$work/cmake-build/may_hook_consumer" || fail "CMake consumer of may::hook"

if ((http)); then
    LD_LIBRARY_PATH=$libdir "$work/cmake-build/may_http_consumer" || fail "CMake consumer of may::http"
fi

echo "--- consumer via pkg-config may"
export PKG_CONFIG_PATH=$pcdir
pc_cflags=$(pkg-config --cflags may)
pc_libs=$(pkg-config --libs may)
echo "    pkg-config --cflags --libs may: $pc_cflags $pc_libs"
pc_inc=$(pkg-config --variable=includedir may)
if [[ $(cd "$pc_inc" 2>/dev/null && pwd -P) != $(cd "$prefix/include" && pwd -P) ]]; then
    fail "may.pc points to includedir=$pc_inc, not into the install prefix $prefix;" \
        "its prefix is fixed at configure time (CMAKE_INSTALL_PREFIX) so it breaks" \
        "with 'cmake --install --prefix'. Make it relocatable, e.g. prefix=\${pcfiledir}/../.. in cmake/may.pc.in"
fi
# shellcheck disable=SC2086  # word splitting of the flags is intended
"$CC" -std=c11 -Wall -Wextra -Werror $pc_cflags "$ROOT/tests/install/main.c" \
    -o "$work/pc_consumer" $pc_libs
LD_LIBRARY_PATH=$libdir "$work/pc_consumer" || fail "pkg-config consumer"
LD_LIBRARY_PATH=$libdir ldd "$work/pc_consumer" | grep "$libdir/libmay.so" >/dev/null ||
    fail "pkg-config consumer did not load $libdir/libmay.so"

echo "--- consumer via pkg-config may_hook"
[[ -f $pcdir/may_hook.pc ]] || fail "may_hook.pc not installed"
[[ -f $libdir/libmay_hook.so ]] || fail "libmay_hook.so not installed"
hk_libs=$(pkg-config --libs may_hook)
echo "    pkg-config --cflags --libs may_hook: $(pkg-config --cflags may_hook) $hk_libs"
# shellcheck disable=SC2086  # word splitting of the flags is intended
"$CC" -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags may_hook) \
    "$ROOT/tests/install/hook_main.c" -o "$work/pc_hook_consumer" $hk_libs
LD_LIBRARY_PATH=$libdir ldd "$work/pc_hook_consumer" | grep "$libdir/libmay_hook.so" >/dev/null ||
    fail "pkg-config consumer did not load $libdir/libmay_hook.so"
LD_LIBRARY_PATH=$libdir "$work/pc_hook_consumer" || fail "pkg-config consumer of may_hook"

if ((http)); then
    echo "--- consumer via pkg-config may_http"
    [[ -f $pcdir/may_http.pc ]] || fail "may_http.pc not installed"
    [[ -f $libdir/libmay_http.so && -f $libdir/libmay_http.a ]] || fail "libmay_http.so/.a not installed"
    [[ -f $prefix/include/may_http.h ]] || fail "include/may_http.h not installed"
    extra=$(nm -D --defined-only "$libdir/libmay_http.so" | awk '{print $3}' |
        grep -v -E '^(may_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
    [[ -z $extra ]] || fail "libmay_http.so exports more than may_*:" "${extra//$'\n'/ }"
    ht_libs=$(pkg-config --libs may_http)
    echo "    pkg-config --cflags --libs may_http: $(pkg-config --cflags may_http) $ht_libs"
    # shellcheck disable=SC2086  # word splitting of the flags is intended
    "$CC" -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags may_http) \
        "$ROOT/tests/install/http_main.c" -o "$work/pc_http_consumer" $ht_libs
    LD_LIBRARY_PATH=$libdir "$work/pc_http_consumer" || fail "pkg-config consumer of may_http"
fi

echo "install-test: OK"
