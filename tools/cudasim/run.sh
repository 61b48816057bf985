#!/usr/bin/env bash
# Runs a command with cudasim standing in for the CUDA driver and NVRTC (kernels run on the
# CPU): builds target/cudasim/ (libcuda.so.1 and libnvrtc.so, one shared object) when its
# sources changed, then runs "$@" with that folder first on LD_LIBRARY_PATH.
#
#   tools/cudasim/run.sh cargo test -p t0-kernels --features cuda --test cuda
#
# T0SIM_ORDER=forward|reverse|shuffle sets the order in which a block's threads run between
# barriers (a race shows as a result that changes with it); T0SIM_CC=80 makes the device
# report compute capability 8.0 (default 9.0). See tools/cudasim/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${T0SIM_DIR:-$root/target/cudasim}
mkdir -p "$out"
lib=$out/libt0cudasim.so
if [ ! -f "$lib" ] || [ "$here/cudasim.cpp" -nt "$lib" ] || [ "$here/sim_device.h" -nt "$out/sim_device.h" ]; then
    ${CXX:-g++} -std=c++17 -O2 -g -fPIC -shared -Wall -o "$lib.tmp" "$here/cudasim.cpp" -ldl -lpthread
    mv "$lib.tmp" "$lib"
    cp "$here/sim_device.h" "$out/sim_device.h"
    for name in libcuda.so libcuda.so.1 libnvrtc.so libnvrtc.so.12; do ln -sf libt0cudasim.so "$out/$name"; done
fi
export LD_LIBRARY_PATH="$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
