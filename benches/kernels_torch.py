#!/usr/bin/env python3
"""PyTorch's CPU matmul at T0_3B's shapes, for docs/kernels.md (run beside `cargo bench -p t0-kernels`).

    pip install torch            # any recent CPU build; not needed by CI
    python benches/kernels_torch.py

Times `x @ w.T` (f32, w stored [out, in] as HF does) for M = 1, 8, 64, 512 with as many threads as
the machine has cores, median of repeated runs, weights rotated through several copies so M <= 8
reads them from DRAM like a decode step. Prints GFLOP/s (M >= 64) or GB/s of weights (M <= 8).
"""
import os
import statistics
import time

import torch

SHAPES = [("qkvo_2048x2048", 2048, 2048), ("wi_5120x2048", 5120, 2048), ("wo_2048x5120", 2048, 5120),
          ("lm_head_32128x2048", 32128, 2048)]
MS = [1, 8, 64, 512]
ROTATE_BYTES = 256 << 20


def bench(fn, min_time=1.0, min_reps=5):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    torch.set_num_threads(os.cpu_count())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, n, k in SHAPES:
        w0 = torch.randn(n, k)
        copies = max(1, ROTATE_BYTES // (n * k * 4))
        ws = [w0.clone() for _ in range(copies)]
        for m in MS:
            x = torch.randn(m, k)
            i = [0]

            def run():
                torch.matmul(x, ws[i[0] % len(ws)].t())
                i[0] += 1

            t = bench(run)
            if m <= 8:
                print(f"torch/matmul/{name}/f32/m{m}: {n * k * 4 / t / 1e9:.1f} GB/s ({t * 1e3:.3f} ms)")
            else:
                print(f"torch/matmul/{name}/f32/m{m}: {2 * m * n * k / t / 1e9:.1f} GFLOP/s ({t * 1e3:.3f} ms)")


if __name__ == "__main__":
    main()
