#!/bin/sh
# The shared library exports the public API and nothing else: every dynamic symbol it
# defines is named in include/, and none is a private tg__ name.
# Usage: exports.sh libtapegrad.so include-dir
set -eu
lib=$1 include=$2
symbols=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }')
[ -n "$symbols" ] || { echo "no exported symbols in $lib" >&2; exit 1; }
bad=0
for s in $symbols; do
    case $s in
        tg__*) echo "private symbol exported: $s" >&2; bad=1 ;;
        tg_*) grep -rqw -- "$s" "$include" || { echo "exported but not in the public headers: $s" >&2; bad=1; } ;;
        _init|_fini) ;;
        *) echo "exported symbol without the tg_ prefix: $s" >&2; bad=1 ;;
    esac
done
[ $bad -eq 0 ] && echo "$(echo "$symbols" | wc -l) exported symbols, all public"
exit $bad
