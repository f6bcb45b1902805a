#!/usr/bin/env python3
"""The SQC step-multiplier grid (tau) of the reference SliM-LLM quantizer, built with torch.

Spec §4.2 (slim-llm/utils/mixed_quantizer.py, Quantizer.fit, tau_range = 0.1, tau_n = 50):
    torch.cat([torch.ones(1),
               torch.linspace(1.0, 1 + 0.1, 51)[1:],
               torch.linspace(1.0, 1 - 0.1, 51)[1:]])
i.e. 101 float32 values in search order (ties keep the earlier one, so the order matters).
Each value is stored as its float32 bit pattern (exact) and as a decimal for reading.

Usage:
    python3 scripts/reference/slim_tau_grid_golden.py [OUT_JSON]
default OUT_JSON: Tests/SlimQuantTests/Fixtures/tau_grid_golden.json (repo root relative).
The committed golden was produced with (torch 2.13.0+cpu):
    /opt/refenv/bin/python scripts/reference/slim_tau_grid_golden.py
"""
import json
import os
import sys

import numpy as np
import torch


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "Tests", "SlimQuantTests", "Fixtures", "tau_grid_golden.json")
    tau_range, tau_n = 0.1, 50
    grid = torch.cat([torch.ones(1),
                      torch.linspace(1.0, 1 + tau_range, tau_n + 1)[1:],
                      torch.linspace(1.0, 1 - tau_range, tau_n + 1)[1:]])
    assert grid.dtype == torch.float32 and grid.numel() == 101
    values = grid.numpy().astype(np.float32)
    doc = {
        "generator": "scripts/reference/slim_tau_grid_golden.py",
        "torch": torch.__version__,
        "bits": [int(v) for v in values.view(np.uint32)],
        "values": [float(v) for v in values],
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
