#!/usr/bin/env python3
"""Baseline for slim-bench: times numpy (OpenBLAS) C = A @ B.T for the given shapes.

usage: numpy_gemm.py THREADS M,N,K [M,N,K ...]
Prints one JSON object per line: {"m":..,"n":..,"k":..,"gflops":..,"seconds":..,"blas":..}.
The thread count must be set before numpy loads, so THREADS is exported to the BLAS env vars.
"""
import json
import os
import sys
import time

threads = sys.argv[1]
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = threads
import numpy as np  # noqa: E402

try:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
except Exception:  # older numpy
    blas = "unknown"

rng = np.random.default_rng(0)
for spec in sys.argv[2:]:
    m, n, k = (int(v) for v in spec.split(","))
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k)).astype(np.float32)
    bt = b.T
    a @ bt  # warm-up
    best, total, reps = float("inf"), 0.0, 0
    while reps < 3 or total < 1.0:
        t = time.perf_counter()
        a @ bt
        dt = time.perf_counter() - t
        best, total, reps = min(best, dt), total + dt, reps + 1
    print(json.dumps({"m": m, "n": n, "k": k, "seconds": best, "gflops": 2 * m * n * k / best / 1e9, "blas": blas}), flush=True)
