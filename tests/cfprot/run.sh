#!/usr/bin/env bash
# tests/cfprot/run.sh READELF CC ARCH OBJECTS -- PROGRAM... - the
# control-flow protection of the switch.  OBJECTS (one argument, a CMake
# list: ';' between) are the objects of switch.S (src/arch/<arch>/) and of
# tests/cfprot/cfprot.c, which tests/CMakeLists.txt builds with
# -fcf-protection=full or -mbranch-protection=standard and links into
# PROGRAM.
#
# 1. PROGRAM (cfprot, through the emulator when cross-compiled) switches
#    and checks the landing pads.
# 2. The switch's object carries the GNU property note: x86-64 IBT and
#    never SHSTK (shadow stacks cannot follow a stack switch: switch.S);
#    aarch64 BTI.
# 3. A relocatable link of it with C code built the same way, which is
#    what linking libmay statically does to the notes (the linker ANDs
#    them), keeps IBT (and drops the C object's SHSTK) or BTI.  Without the
#    note the protection would silently vanish from every such program.
#    (Debian's own start files carry no note, so no executable linked on
#    Debian shows one: the relocatable link is where it can be seen.)
set -euo pipefail
readelf=$1 cc=$2 arch=$3
sw= prog=
IFS=';' read -r -a objs <<<"$4"
for o in "${objs[@]}"; do
    case $o in
    *switch.S.o) sw=$o ;;
    *cfprot.c.o) prog=$o ;;
    esac
done
if [[ -z $sw || -z $prog ]]; then
    echo "cfprot: objects not found in: $4" >&2
    exit 2
fi
shift 4
[[ ${1:-} == -- ]] && shift
"$@"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cc" -r -nostdlib -o "$tmp/linked.o" "$prog" "$sw"
fail=0
features() { # object: its "... feature: A, B" property line(s)
    "$readelf" -n "$1" | sed -n 's/.*Properties: *//p'
}
expect() { # object regex-that-must-match [regex-that-must-not]
    local f
    f=$(features "$1")
    echo "cfprot: $(basename "$1"): ${f:-no property note}"
    if ! grep -Eq -- "$2" <<<"$f"; then
        echo "cfprot: missing in $(basename "$1"): $2" >&2
        fail=1
    fi
    if [[ -n ${3:-} ]] && grep -Eq -- "$3" <<<"$f"; then
        echo "cfprot: must not be in $(basename "$1"): $3" >&2
        fail=1
    fi
}
case $arch in
x86_64)
    expect "$prog" 'x86 feature: .*IBT' # the compiler's own note, for contrast
    expect "$sw" 'x86 feature: IBT' 'SHSTK'
    expect "$tmp/linked.o" 'x86 feature: IBT' 'SHSTK'
    ;;
aarch64)
    expect "$prog" 'AArch64 feature: .*BTI'
    expect "$sw" 'AArch64 feature: BTI'
    expect "$tmp/linked.o" 'AArch64 feature: BTI'
    ;;
*)
    echo "cfprot: unknown architecture $arch" >&2
    exit 2
    ;;
esac
exit $fail
