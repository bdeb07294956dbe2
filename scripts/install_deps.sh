#!/usr/bin/env bash
# Installs the Debian packages t6 builds with, when any is missing (needs root): Open MPI serves
# data-parallel training (mpirun) and its tests. npm (only used to fetch GPT-2's vocabulary files) is
# installed only when no npm is on the PATH.
set -euo pipefail
missing=""
for p in cmake g++ make libopenblas-dev doctest-dev nlohmann-json3-dev libopenmpi-dev openmpi-bin; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
