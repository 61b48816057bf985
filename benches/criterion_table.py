#!/usr/bin/env python3
"""Prints every criterion result under target/criterion as `id  median  throughput` (the figures in
docs/kernels.md come from this after `cargo bench -p t0-kernels`). Throughput: GB/s for byte-counted
benches, G/s (GFLOP/s for matmul M >= 64 and attention) for element-counted ones."""
import glob
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
for path in sorted(glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True)):
    bench = json.load(open(path))
    est = json.load(open(path.replace("benchmark.json", "estimates.json")))
    secs = est["median"]["point_estimate"] * 1e-9
    thr = bench.get("throughput") or {}
    if "Bytes" in thr:
        rate = f"{thr['Bytes'] / secs / 1e9:.1f} GB/s"
    elif "Elements" in thr:
        rate = f"{thr['Elements'] / secs / 1e9:.1f} G/s"
    else:
        rate = ""
    print(f"{bench['full_id']:55s} {secs * 1e3:10.3f} ms  {rate}")
