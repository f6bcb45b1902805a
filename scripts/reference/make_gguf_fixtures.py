#!/usr/bin/env python3
"""Small GGUF fixtures and their expected decodings, for SlimIO/SlimModel GGUF tests.

Writes into OUT_DIR (default Tests/SlimIOTests/Fixtures/gguf relative to the repo root):

  quant-types.gguf           GGUF *v2* file, one tensor per decodable ggml type (F32, F16,
                             BF16, Q8_0, Q4_0, Q4_1), random blocks plus edge cases: F16
                             subnormals / infinities / NaNs, negative and subnormal scales,
                             Q4_0 blocks with negative d (where ggml yields -0.0 for q = 8).
  quant-types.expected.gguf  the same tensor names as F32: the values ggml's
                             dequantize_row_* produce, computed here with numpy float32
                             arithmetic in ggml's order ((q - 8) * d, q * d + m, q * d).
                             Each is also checked against the reference converter's
                             `dequantize` (gguf_to_hf.py): identical bits except that the
                             converter returns +0.0 where ggml returns -0.0 (Q4_0, q = 8, d < 0).
  tiny-llama.gguf            a 1-layer llama model (hidden 32, 4 heads, 2 KV heads, ffn 32,
                             vocab 32, tied embeddings, alignment 64) mixing Q8_0, Q4_0, Q4_1,
                             F16, BF16 and F32 tensors, with a byte-level BPE ("gpt2",
                             pre "llama-bpe") tokenizer. Its Q4_0 scales are positive, so the
                             converter's output has no signed-zero difference from ggml.
  tiny-llama.{f32,f16,bf16}.safetensors, tiny-llama.config.json
                             what the reference converter writes for it
                             (gguf_to_hf.py tiny-llama.gguf OUT --dtype f32|f16|bf16).

Deterministic (numpy default_rng seed 20240611). Needs numpy only.

Usage:
    python scripts/reference/make_gguf_fixtures.py [GGUF_TO_HF_PY] [OUT_DIR]
defaults: ../shared/scripts/gguf_to_hf.py relative to the repo root, and the directory above.
The committed fixtures were produced with:
    /opt/refenv/bin/python scripts/reference/make_gguf_fixtures.py
"""
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONVERTER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "scripts", "gguf_to_hf.py")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "Tests", "SlimIOTests", "Fixtures", "gguf")

F32, F16, Q4_0, Q4_1, Q8_0, BF16 = 0, 1, 2, 3, 8, 30
rng = np.random.default_rng(20240611)


# ---------------------------------------------------------------- GGUF writing

def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(v):
    """(type id, payload) for a tagged value: (tag, python value)."""
    tag, x = v
    scalar = {"u8": (0, "<B"), "i8": (1, "<b"), "u16": (2, "<H"), "i16": (3, "<h"), "u32": (4, "<I"),
              "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"), "u64": (10, "<Q"), "i64": (11, "<q"),
              "f64": (12, "<d")}
    if tag in scalar:
        tid, fmt = scalar[tag]
        return tid, struct.pack(fmt, x)
    if tag == "str":
        return 8, gguf_string(x)
    if tag == "arr":
        etag, items = x
        etid = gguf_value((etag, items[0]))[0] if items else 0
        payload = struct.pack("<IQ", etid, len(items)) + b"".join(gguf_value((etag, i))[1] for i in items)
        return 9, payload
    raise ValueError(tag)


def write_gguf(path, version, kv, tensors, alignment=32):
    """tensors: list of (name, dims in GGUF order, ggml type, raw bytes)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv)))
    for key, val in kv:
        tid, payload = gguf_value(val)
        out += gguf_string(key) + struct.pack("<I", tid) + payload
    offset, offsets = 0, []
    for name, dims, gtype, raw in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gtype, offset)
        offsets.append(offset)
        offset = (offset + len(raw) + alignment - 1) // alignment * alignment
    start = (len(out) + alignment - 1) // alignment * alignment
    out += b"\0" * (start - len(out))
    for (name, dims, gtype, raw), off in zip(tensors, offsets):
        out += b"\0" * (start + off - len(out))
        out += raw
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------- block encoders

def f16_bits(values):
    return np.asarray(values, dtype=np.float32).astype("<f2").view("<u2")


def q8_0_blocks(nblk, scales=None):
    d = f16_bits(scales if scales is not None else rng.normal(0, 0.02, nblk))
    qs = rng.integers(-128, 128, size=(nblk, 32), dtype=np.int8)
    raw = b"".join(struct.pack("<H", d[i]) + qs[i].tobytes() for i in range(nblk))
    expected = (qs.astype(np.float32) * d.view("<f2").astype(np.float32)[:, None]).reshape(-1)
    return raw, expected


def q4_0_blocks(nblk, scales):
    d = f16_bits(scales)
    qs = rng.integers(0, 256, size=(nblk, 16), dtype=np.uint8)
    qs[:, 0] = 0x88  # q = 8 in both nibbles: the signed-zero case when d < 0
    raw = b"".join(struct.pack("<H", d[i]) + qs[i].tobytes() for i in range(nblk))
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32) - 8
    expected = (q.astype(np.float32) * d.view("<f2").astype(np.float32)[:, None]).reshape(-1)
    return raw, expected


def q4_1_blocks(nblk, scales, mins):
    d, m = f16_bits(scales), f16_bits(mins)
    qs = rng.integers(0, 256, size=(nblk, 16), dtype=np.uint8)
    raw = b"".join(struct.pack("<HH", d[i], m[i]) + qs[i].tobytes() for i in range(nblk))
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
    df = d.view("<f2").astype(np.float32)[:, None]
    mf = m.view("<f2").astype(np.float32)[:, None]
    expected = ((q * df).astype(np.float32) + mf).reshape(-1)
    return raw, expected


def load_converter():
    spec = importlib.util.spec_from_file_location("gguf_to_hf", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def same_bits_up_to_zero_sign(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ua, ub = a.view(np.uint32), b.view(np.uint32)
    zero = (a == 0) & (b == 0)
    return bool(np.all((ua == ub) | zero))


# ---------------------------------------------------------------- fixtures

def quant_types(conv):
    tensors, expected = [], []

    f32 = np.concatenate([rng.normal(0, 1, 12), [0.0, -0.0, np.inf, np.nan]]).astype("<f4")
    tensors.append(("f32", [8, 2], F32, f32.tobytes()))
    expected.append(("f32", [8, 2], f32))

    f16 = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF,
                    0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x3555, 0xB266, 0x5A5A, 0x1234], dtype="<u2")
    tensors.append(("f16", [16], F16, f16.tobytes()))
    expected.append(("f16", [16], f16.view("<f2").astype(np.float32)))

    bf16 = np.array([0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x7FC0, 0x0001], dtype="<u2")
    tensors.append(("bf16", [8], BF16, bf16.tobytes()))
    expected.append(("bf16", [8], (bf16.astype(np.uint32) << 16).view(np.float32)))

    raw, exp = q8_0_blocks(4, [0.01, -0.02, 6.0e-8, 0.0])  # includes a subnormal and a zero scale
    tensors.append(("q8_0", [64, 2], Q8_0, raw))
    expected.append(("q8_0", [64, 2], exp))

    raw, exp = q4_0_blocks(3, [0.0123, -0.0456, -6.0e-8])
    tensors.append(("q4_0", [32, 3], Q4_0, raw))
    expected.append(("q4_0", [32, 3], exp))

    raw, exp = q4_1_blocks(3, [0.0123, -0.0456, 0.001], [-0.1, 0.25, -0.0])
    tensors.append(("q4_1", [96], Q4_1, raw))
    expected.append(("q4_1", [96], exp))

    for (name, dims, gtype, raw), (_, _, exp) in zip(tensors, expected):
        ref = conv.dequantize(raw, gtype, int(np.prod(dims)))
        assert same_bits_up_to_zero_sign(ref, exp), name

    write_gguf(os.path.join(OUT, "quant-types.gguf"), 2,
               [("general.architecture", ("str", "test")), ("general.name", ("str", "quant types"))], tensors)
    write_gguf(os.path.join(OUT, "quant-types.expected.gguf"), 3, [],
               [(n, d, F32, np.asarray(e, "<f4").tobytes()) for n, d, e in expected])


def tiny_llama():
    hidden, heads, kv_heads, ffn, vocab = 32, 4, 2, 32, 32
    specs = [  # name, dims (GGUF order), type
        ("token_embd.weight", [hidden, vocab], Q8_0),
        ("blk.0.attn_norm.weight", [hidden], F32),
        ("blk.0.attn_q.weight", [hidden, hidden], Q4_0),
        ("blk.0.attn_k.weight", [hidden, hidden // heads * kv_heads], Q4_1),
        ("blk.0.attn_v.weight", [hidden, hidden // heads * kv_heads], Q8_0),
        ("blk.0.attn_output.weight", [hidden, hidden], F16),
        ("blk.0.ffn_gate.weight", [hidden, ffn], BF16),
        ("blk.0.ffn_up.weight", [hidden, ffn], Q4_1),
        ("blk.0.ffn_down.weight", [ffn, hidden], Q8_0),
        ("blk.0.ffn_norm.weight", [hidden], F32),
        ("output_norm.weight", [hidden], F32),
    ]
    tensors = []
    for name, dims, gtype in specs:
        n = int(np.prod(dims))
        if gtype == F32:
            raw = (1.0 + rng.normal(0, 0.1, n)).astype("<f4").tobytes()
        elif gtype == F16:
            raw = rng.normal(0, 0.05, n).astype("<f2").tobytes()
        elif gtype == BF16:
            raw = (rng.normal(0, 0.05, n).astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        elif gtype == Q8_0:
            raw = q8_0_blocks(n // 32)[0]
        elif gtype == Q4_0:
            raw = q4_0_blocks(n // 32, rng.uniform(0.001, 0.02, n // 32))[0]
        else:
            raw = q4_1_blocks(n // 32, rng.uniform(0.001, 0.02, n // 32), rng.normal(0, 0.05, n // 32))[0]
        tensors.append((name, dims, gtype, raw))

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|user|>"]
    chars = [chr(c) for c in range(ord("a"), ord("a") + 16)] + ["Ġ", "Ċ", "!", "."]
    merged = ["ab", "cd", "Ġa", "abcd", "ef", "Ġab", "gh", "Ġabcd", "ij"]
    tokens = specials + chars + merged
    assert len(tokens) == vocab, len(tokens)
    merges = ["a b", "c d", "Ġ a", "ab cd", "e f", "Ġ ab", "g h", "Ġab cd", "i j"]
    kv = [
        ("general.architecture", ("str", "llama")),
        ("general.name", ("str", "tiny llama fixture")),
        ("general.alignment", ("u32", 64)),
        ("llama.context_length", ("u32", 128)),
        ("llama.embedding_length", ("u32", hidden)),
        ("llama.feed_forward_length", ("u32", ffn)),
        ("llama.block_count", ("u32", 1)),
        ("llama.attention.head_count", ("u32", heads)),
        ("llama.attention.head_count_kv", ("u32", kv_heads)),
        ("llama.rope.freq_base", ("f32", 500000.0)),
        ("llama.attention.layer_norm_rms_epsilon", ("f32", 1e-5)),
        ("tokenizer.ggml.model", ("str", "gpt2")),
        ("tokenizer.ggml.pre", ("str", "llama-bpe")),
        ("tokenizer.ggml.tokens", ("arr", ("str", tokens))),
        ("tokenizer.ggml.token_type", ("arr", ("i32", [3, 3, 4] + [1] * (vocab - 3)))),
        ("tokenizer.ggml.merges", ("arr", ("str", merges))),
        ("tokenizer.ggml.bos_token_id", ("u32", 0)),
        ("tokenizer.ggml.eos_token_id", ("u32", 1)),
        ("tokenizer.ggml.padding_token_id", ("u32", 0xFFFFFFFF)),
    ]
    path = os.path.join(OUT, "tiny-llama.gguf")
    write_gguf(path, 3, kv, tensors, alignment=64)

    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("f32", "f16", "bf16"):
            d = os.path.join(tmp, dtype)
            subprocess.run([sys.executable, CONVERTER, path, d, "--dtype", dtype], check=True,
                           stdout=subprocess.DEVNULL)
            shutil.copyfile(os.path.join(d, "model.safetensors"), os.path.join(OUT, f"tiny-llama.{dtype}.safetensors"))
            if dtype == "f32":
                shutil.copyfile(os.path.join(d, "config.json"), os.path.join(OUT, "tiny-llama.config.json"))


def main():
    os.makedirs(OUT, exist_ok=True)
    quant_types(load_converter())
    tiny_llama()
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):8d}  {name}")


if __name__ == "__main__":
    main()
