#!/usr/bin/env python3
"""Baseline for scripts/gpu-check.sh: fp16 cuBLAS GEMV (torch.nn.functional.linear, one token) at
LLaMA-7B shapes, next to the device-to-device copy bandwidth measured in the same process.

usage: torch_gemv.py [ITERATIONS]
Prints one line per measurement (SPEED ... or SKIP ...); exits 0 even without torch/CUDA.
Timing: CUDA events around ITERATIONS back-to-back calls after a warm-up, like slim-gpu-check's
"call" numbers; bandwidth counts the weight and activation bytes read once per call, the copy
counts bytes read + written (CUDA bandwidthTest's convention). Cold, as slim-gpu-check's rates:
the calls cycle through copies of the weight that together hold twice the L2 (a 32 MB fp16
4096x4096 matrix would otherwise be read from a 50 MB L2); the L2-hot time is printed beside it.
"""
import sys

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200
try:
    import torch
except ImportError:
    print("SKIP torch cuBLAS baseline: torch is not installed for", sys.executable)
    sys.exit(0)
if not torch.cuda.is_available():
    print("SKIP torch cuBLAS baseline: torch sees no CUDA device")
    sys.exit(0)


def timed(fn, reps):
    fn(0)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(reps):
        fn(i)
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / 1e3 / reps


device = torch.device("cuda")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
n = 512 << 20
a = torch.empty(n, dtype=torch.uint8, device=device)
b = torch.empty_like(a)
copy = 2 * n / timed(lambda i: b.copy_(a), 20)
print(f"SPEED torch copy D2D: {copy / 1e9:.0f} GB/s (512 MiB copies, read + write bytes)")
del a, b
l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20)
for rows, cols in [(4096, 4096), (11008, 4096), (4096, 11008)]:
    w = torch.randn(rows, cols, dtype=torch.float16, device=device) * 0.02
    x = torch.randn(1, cols, dtype=torch.float16, device=device)
    copies = [w] + [w.clone() for _ in range(-(-2 * l2 // w.nbytes) - 1)]
    t = timed(lambda i: torch.nn.functional.linear(x, copies[i % len(copies)]), iterations)
    hot = timed(lambda i: torch.nn.functional.linear(x, w), iterations)
    rate = (2 * rows * cols + 2 * cols) / t
    print(f"SPEED torch fp16 cuBLAS gemv {rows:5d}x{cols:<5d}: {t * 1e6:6.2f} µs = {rate / 1e9:5.0f} GB/s "
          f"= {100 * rate / copy:3.0f}% of copy (cold, {len(copies)} copies); L2-hot {hot * 1e6:6.2f} µs")
    del copies, w
