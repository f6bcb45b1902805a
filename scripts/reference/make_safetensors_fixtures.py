#!/usr/bin/env python3
"""Reference safetensors fixtures for Tests/SlimIOTests (SafetensorsPythonFixtureTests).

Writes small safetensors files with the reference implementation (the Python `safetensors`
package, whose Rust core is the format's reference writer, and `huggingface_hub`'s
`save_torch_state_dict` for a sharded checkpoint) plus `expected.json`, which records what a
reader must find in them: header entries, raw bytes, the Float value of every float element as
PyTorch computes it, and the float32 sources from which the F16/BF16 tensors were converted by
PyTorch (so the Swift encoders are checked against PyTorch's rounding). It also records facts
about ../shared/models/stories260K/model.safetensors read with `safetensors.numpy`.

Requirements: numpy, safetensors (0.8), huggingface_hub (2.x) and torch (CPU). The committed
outputs were produced on x86_64 (AVX-512) with /opt/refenv (numpy 2.4.6, safetensors 0.8.0,
huggingface_hub 2.4.0) and torch 2.13.0+cpu installed without dependencies:

    /opt/refenv/bin/pip install --no-deps --target /tmp/st-torch \
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    PYTHONPATH=/tmp/st-torch /opt/refenv/bin/python scripts/reference/make_safetensors_fixtures.py

Defaults: --out Tests/SlimIOTests/Fixtures/safetensors and --shared ../shared, both relative to
the repository root. Note: with two or more metadata keys the reference writes them in hash-map
order, which changes from run to run; the tests therefore take the order from the file.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
import huggingface_hub
from huggingface_hub import save_torch_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def f32_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())


def f32_bits(t):
    """Bit patterns of `t` converted to float32 by PyTorch (what floatArray must return)."""
    return [int(b) for b in t.to(torch.float32).contiguous().numpy().view(np.uint32).reshape(-1)]


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def describe_file(path, tensors, values=True):
    """Header entries in data-offset order with raw bytes and (if `values`) decoded values."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None)
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    out = []
    for name, info in entries:
        t = tensors[name]
        assert DTYPE_NAMES[t.dtype] == info["dtype"] and list(t.shape) == info["shape"]
        entry = {
            "name": name, "dtype": info["dtype"], "shape": info["shape"],
            "data_offsets": info["data_offsets"], "raw_hex": raw_bytes(t).hex(),
        }
        if not values:
            pass
        elif t.dtype.is_floating_point:
            entry["float_bits"] = f32_bits(t)
        else:
            entry["ints"] = [int(v) for v in t.to(torch.int64).reshape(-1).tolist()]
        out.append(entry)
    # Metadata as pairs in file order (json.loads keeps it).
    meta_pairs = None if metadata is None else [[k, v] for k, v in metadata.items()]
    return {"file": os.path.basename(path), "metadata": meta_pairs, "tensors": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "Tests/SlimIOTests/Fixtures/safetensors"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    expected = {
        "generator": {
            "safetensors": safetensors.__version__, "huggingface_hub": huggingface_hub.__version__,
            "torch": torch.__version__, "numpy": np.__version__,
        },
        "files": [], "float_sources": [],
    }

    # --- dtypes.safetensors: every supported element type, special values, scalar, empty dims.
    f16_src = [0x3F800000, 0xC0200000, 0x477FE000, 0x4788B800, 0x33800000, 0x3F801000, 0x3F803000,
               0x7FC00000, 0xFF800000]  # 1, -2.5, 65504, 70000 (-> inf), 2^-24, two ties, NaN, -inf
    bf16_src = [0x3F800000, 0xC0200000, 0x7F7FFFFF, 0x3F808000, 0x3F818000, 0x000116C2, 0x7FC00000,
                0xFFC00000, 0x7F800000]  # 1, -2.5, max (-> inf), two ties, subnormal, NaN, -NaN, inf
    dtypes = {
        "f32.values": f32_from_bits([0x3FC00000, 0x80000000, 0x7FC00000, 0xFF800000, 0x7F800000,
                                     0x7F7FFFFF, 0x00000001, 0xC0100000]).reshape(2, 4),
        "f16.values": f32_from_bits(f16_src).to(torch.float16),
        "bf16.values": f32_from_bits(bf16_src).to(torch.bfloat16),
        "f64.values": torch.tensor([0.1, 1e300, -1e-320, float("nan")], dtype=torch.float64),
        "i64.values": torch.tensor([-(2**63), 2**63 - 1], dtype=torch.int64),
        "i32.values": torch.tensor([-(2**31), 0, 2**31 - 1], dtype=torch.int32),
        "i8.values": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "u8.values": torch.tensor([[0, 1], [128, 255]], dtype=torch.uint8),
        "bool.values": torch.tensor([True, False, True]),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
        "u8.empty": torch.zeros((4, 0), dtype=torch.uint8),
    }
    path = os.path.join(args.out, "dtypes.safetensors")
    safetensors.torch.save_file(dtypes, path)
    expected["files"].append(describe_file(path, dtypes))
    expected["float_sources"] += [
        {"file": "dtypes.safetensors", "tensor": "f16.values", "dtype": "F16", "source_f32_bits": f16_src},
        {"file": "dtypes.safetensors", "tensor": "bf16.values", "dtype": "BF16", "source_f32_bits": bf16_src},
    ]

    # --- metadata.safetensors: one metadata key (deterministic order).
    with_meta = {
        "weight": torch.arange(6, dtype=torch.float32).reshape(3, 2) / 4,
        "ids": torch.tensor([3, 1, 4, 1], dtype=torch.int32),
    }
    path = os.path.join(args.out, "metadata.safetensors")
    safetensors.torch.save_file(with_meta, path, metadata={"format": "pt"})
    expected["files"].append(describe_file(path, with_meta))

    # --- metadata_multi.safetensors: several keys, escapes and non-ASCII text.
    multi = {"x": torch.tensor([0.5, -0.5], dtype=torch.bfloat16)}
    path = os.path.join(args.out, "metadata_multi.safetensors")
    safetensors.torch.save_file(multi, path, metadata={
        "format": "pt", "note": 'tab\there "quoted" back\\slash /', "unicode": "h\u00e9llo \u2192 \u4e16\u754c \U0001F600",
        "control": "\x01\x08\x0c\x1f\x7f", "empty": "",
    })
    expected["files"].append(describe_file(path, multi))

    # --- sharded/: huggingface_hub checkpoint writer, 3+ shards, one tensor above the limit.
    shard_dir = os.path.join(args.out, "sharded")
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.makedirs(shard_dir)
    state = {
        "model.embed.weight": (torch.arange(64, dtype=torch.float32) - 32) / 8,   # 256 B
        "model.norm.weight": torch.ones(16, dtype=torch.bfloat16),                 # 32 B
        "model.big.weight": torch.linspace(-1, 1, 200, dtype=torch.float32),       # 800 B > max
        "model.layers.0.w": torch.arange(100, dtype=torch.float16) / 7,            # 200 B
        "model.layers.0.ids": torch.arange(30, dtype=torch.int32),                 # 120 B
        "model.layers.0.empty": torch.zeros((0, 8), dtype=torch.float32),          # 0 B
        "model.scale": torch.tensor(0.25, dtype=torch.float32),                    # 4 B
        "model.layers.1.w": torch.arange(120, dtype=torch.float16) / 9,            # 240 B
    }
    max_shard = 400
    save_torch_state_dict(state, shard_dir, max_shard_size=max_shard)
    files = sorted(os.listdir(shard_dir))
    with open(os.path.join(shard_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    expected["sharded"] = {
        "directory": "sharded", "max_shard_bytes": max_shard, "metadata": [["format", "pt"]],
        "state_dict_order": list(state.keys()), "files": files, "weight_map": index["weight_map"],
        "total_size": index["metadata"]["total_size"],
        "shards": [describe_file(os.path.join(shard_dir, name), state, values=False)
                   for name in files if name.endswith(".safetensors")],
    }

    # --- stories260K facts, read with the reference reader.
    stories = os.path.join(args.shared, "models/stories260K/model.safetensors")
    if os.path.exists(stories):
        with safetensors.safe_open(stories, framework="np") as f:
            names = list(f.keys())
            meta = f.metadata()
            arrays = {k: f.get_tensor(k) for k in names}
        expected["stories260K"] = {
            "path": "models/stories260K/model.safetensors",
            "tensor_count": len(names),
            "metadata": [[k, v] for k, v in (meta or {}).items()],
            "shapes": {k: list(arrays[k].shape) for k in [
                "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                "model.layers.4.mlp.gate_proj.weight", "model.layers.4.mlp.down_proj.weight"]},
            "head_bits": {k: [int(b) for b in arrays[k].reshape(-1)[:8].view(np.uint32)]
                          for k in ["model.norm.weight", "model.layers.2.self_attn.v_proj.weight"]},
            "sums": {k: float(arrays[k].astype(np.float64).sum())
                     for k in ["model.embed_tokens.weight", "model.layers.3.mlp.up_proj.weight"]},
        }
    else:
        print(f"warning: {stories} not found; stories260K facts not written", file=sys.stderr)

    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"), ensure_ascii=True)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
