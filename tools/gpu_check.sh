#!/usr/bin/env bash
# Issue #7's GPU checks in one go, for a session that is lent a GPU machine (it has the CUDA
# driver, NVRTC and torch, but no cargo): see docs/cuda.md.
#
#   tools/gpu_check.sh bundle       here, with cargo: build the CUDA test binaries, the kernels'
#                                   criterion bench and `t0` with feature `cuda`, stripped, into
#                                   target/gpu-bundle (~12 MB; carry that path to the device machine)
#   tools/gpu_check.sh run [OUT]    on the device machine, from the repository root: the kernels
#                                   against the scalar reference, the model on the GPU against
#                                   the HF fixtures (decode steps as CUDA graphs, then without),
#                                   then `t0 bench --device cuda` (bf16, batch 1 and 8; batch 1
#                                   also without graphs) on T0_3B-shaped random weights beside HF transformers
#                                   on the same GPU, then the kernels' bench (GB/s, share of the
#                                   memory peak); everything lands in OUT (default $OUT, else
#                                   /tmp/gpu-check)
#
# `T0_GPU_DEVICE=host tools/gpu_check.sh run` runs the same steps on the host backend (no GPU),
# which checks the script itself; `T0_GPU_MODEL=DIR` uses an existing model instead of writing
# the T0_3B-shaped one (5.7 GB in bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle

case "${1:-}" in
bundle)
    rm -rf "$bundle"
    mkdir -p "$bundle"
    # The test binaries' paths, as cargo reports them.
    for spec in "t0-kernels cuda" "t0-rs device"; do
        set -- $spec
        exe=$(cargo test --release --features cuda -p "$1" --test "$2" --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json, sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable")][-1])')
        cp "$exe" "$bundle/test-$2"
    done
    exe=$(cargo bench --features cuda -p t0-kernels --bench cuda --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable")][-1])')
    cp "$exe" "$bundle/bench-cuda"
    cargo build --release --quiet -p t0-cli --features cuda
    cp target/release/t0 "$bundle/t0"
    strip "$bundle"/*
    du -sh "$bundle"
    ;;
run)
    out=${2:-${OUT:-/tmp/gpu-check}}
    device=${T0_GPU_DEVICE:-cuda}
    mkdir -p "$out"
    # On a GPU the device tests must run, not skip.
    [ "$device" = cuda ] && export T0_REQUIRE_CUDA=1
    [ -x "$bundle/t0" ] || { echo "no $bundle/t0: run \`tools/gpu_check.sh bundle\` first (with cargo)" >&2; exit 1; }
    { nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
    status=0
    echo "== kernels against the scalar reference" | tee "$out/tests.txt"
    "$bundle/test-cuda" --nocapture 2>&1 | tee -a "$out/tests.txt" || status=1
    echo "== the model on the device against the HF fixtures" | tee -a "$out/tests.txt"
    "$bundle/test-device" --nocapture 2>&1 | tee -a "$out/tests.txt" || status=1
    echo "== the same, decode steps launch by launch (T0_CUDA_GRAPHS=0)" | tee -a "$out/tests.txt"
    T0_CUDA_GRAPHS=0 "$bundle/test-device" --nocapture 2>&1 | tee -a "$out/tests.txt" || status=1

    model=${T0_GPU_MODEL:-/tmp/t0_3b-random-bf16}
    if [ ! -f "$model/config.json" ]; then
        echo "== writing T0_3B-shaped random weights (bf16) to $model"
        "$bundle/t0" -q random-init --config tests/fixtures/t0_3b/config.json --out "$model" --dtype bf16
    fi
    echo "== t0 bench --device $device, and HF transformers on the same device"
    hf_device=$([ "$device" = host ] && echo cpu || echo cuda)
    : > "$out/t0-bench.jsonl"
    for batch in 1 8; do
        "$bundle/t0" bench --model "$model" --device "$device" --dtype bf16 --batch "$batch" --json |
            tee -a "$out/t0-bench.jsonl" || status=1
    done
    # Batch 1 again with every decode step launched kernel by kernel: what the CUDA graph buys.
    T0_CUDA_GRAPHS=0 "$bundle/t0" bench --model "$model" --device "$device" --dtype bf16 --batch 1 --json |
        tee "$out/t0-bench-no-graphs.jsonl" || status=1
    if python3 -c 'import torch, transformers' 2>/dev/null; then
        python3 benches/peers/run_peers.py --model "$model" --work /tmp/gpu-check-peers --device "$hf_device" \
            --engines hf:bf16 --json "$out/hf.json" | tee "$out/hf.md" || status=1
    else
        echo "   (no torch/transformers here: HF not run)" | tee "$out/hf.md"
    fi
    # Last, as the longest and least essential step (~2 minutes): the kernels' criterion bench,
    # with its table of GB/s and share of the memory's peak.
    if [ "$device" = cuda ] && [ -z "${T0_GPU_SKIP_BENCH:-}" ]; then
        echo "== kernel bench (criterion)"
        "$bundle/bench-cuda" --bench 2>&1 | tee "$out/bench-cuda.txt" || status=1
    fi
    echo "== results in $out (exit $status)"
    exit $status
    ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
