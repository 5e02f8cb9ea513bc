#!/bin/sh
# Installs the Debian packages that building, testing and the main job need, and only
# those that are missing (libc6-dev is only a Recommends of gcc, and we install without
# recommends, so it is listed; libclang-rt-dev, clang's fuzzer runtime for make fuzz, is
# not even that). g++ builds the test that includes the headers from C++; clang-format
# checks the layout. openmpi-bin (mpirun) and libopenmpi-dev run the data-parallel tests
# (tests/mpi/); tapegrad loads libmpi only in processes mpirun starts, and builds without.
# libdnnl2 (oneDNN 2.x) runs float32 convolutions; tapegrad loads it at run time when it
# is there and runs its portable path otherwise, so it is needed neither to build nor to
# run. Quiet when everything is present; needs root to install (otherwise prints the
# command to run and exits 1).
set -eu

PACKAGES="cmake make gcc g++ libc6-dev clang libclang-rt-dev clang-format libopenblas-dev zlib1g-dev pkg-config dataset-fashion-mnist graphviz openmpi-bin libopenmpi-dev libdnnl2"

missing=""
for pkg in $PACKAGES; do
    # dpkg -s also succeeds for removed packages whose config files remain, so ask
    # for the exact status.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $pkg" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "tapegrad: missing Debian packages:$missing" >&2
    echo "Install them with:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "tapegrad: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # the list is meant to split into words
apt-get install -y -qq --no-install-recommends $missing </dev/null
