#!/usr/bin/env python3
"""CPython `random` goldens for SlimQuant's PythonRandom (calibration-window sampling).

The reference SliM-LLM/GPTQ datautils draw calibration windows with
    random.seed(seed); [random.randint(0, T - seqlen - 1) for _ in range(nsamples)]
so reproducing the reference's windows needs CPython's MT19937 bit for bit. This script records,
with the CPython interpreter that runs it (standard library only):

  * for each seed: the first raw getrandbits(32) outputs after random.seed(seed);
  * getrandbits(k) streams for k = 1, 7, 31, 33, 53 (k > 32 exercises the multi-word path);
  * randint(0, T - L - 1) streams for several corpus sizes T and window lengths L, which is
    exactly the calibration-offset recipe (calibrationOffsets(seed:count:tokenCount:length:));
  * randint with small ranges (many rejections in _randbelow) and randint(a, b) with a != 0.

Seeds: 0, 1, 2, 7, 42, 2**32 + 5 (a two-word init_by_array key) and -3 (seed uses abs()).
All values are < 2**53 so any JSON reader keeps them exact.

Usage:
    python3 scripts/reference/cpython_random_golden.py [OUT_JSON]
default OUT_JSON: Tests/SlimQuantTests/Fixtures/cpython_random_golden.json (repo root relative).
The committed golden was produced with:
    /opt/refenv/bin/python scripts/reference/cpython_random_golden.py
"""
import json
import os
import random
import sys

SEEDS = [0, 1, 2, 7, 42, 2**32 + 5, -3]
RAW_COUNT = 16
BITS_STREAMS = [1, 7, 31, 33, 53]
BITS_COUNT = 8
# (T, L, count): corpus token counts and window lengths for calibrationOffsets.
WINDOWS = [(4097, 2048, 8), (10_000, 2048, 8), (341_469, 2048, 16), (2_500_000, 4096, 8), (2050, 2048, 6)]
SMALL_RANGES = [(0, 0), (0, 1), (0, 2), (5, 9), (-10, 10), (0, 2**40)]


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "Tests", "SlimQuantTests", "Fixtures", "cpython_random_golden.json")
    cases = []
    for seed in SEEDS:
        case = {"seed": seed}
        random.seed(seed)
        case["getrandbits32"] = [random.getrandbits(32) for _ in range(RAW_COUNT)]
        streams = {}
        for k in BITS_STREAMS:
            random.seed(seed)
            streams[str(k)] = [random.getrandbits(k) for _ in range(BITS_COUNT)]
        case["getrandbits"] = streams
        windows = []
        for (t, length, count) in WINDOWS:
            random.seed(seed)
            offsets = [random.randint(0, t - length - 1) for _ in range(count)]
            windows.append({"tokenCount": t, "length": length, "offsets": offsets})
        case["windows"] = windows
        ranges = []
        for (a, b) in SMALL_RANGES:
            random.seed(seed)
            ranges.append({"a": a, "b": b, "values": [random.randint(a, b) for _ in range(12)]})
        case["randint"] = ranges
        cases.append(case)
    doc = {
        "generator": "scripts/reference/cpython_random_golden.py",
        "python": sys.version.split()[0],
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
