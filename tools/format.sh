#!/bin/sh
# Formats every C and C++ file git tracks with the committed .clang-format (Debian 12's
# clang-format 14). `format.sh --check` changes nothing and fails, naming the files,
# when one is not formatted: CI runs that.
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format.sh needs clang-format: make deps" >&2; exit 1; }
files=$(git ls-files '*.c' '*.h' '*.cpp')
if [ "${1:-}" = "--check" ]; then
    bad=""
    for f in $files; do
        clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
    done
    if [ -n "$bad" ]; then
        echo "not formatted (run make format):$bad" >&2
        exit 1
    fi
    echo "$(echo "$files" | wc -w) files formatted as .clang-format says"
else
    # shellcheck disable=SC2086  # the list is meant to split into words
    clang-format -i $files
fi
