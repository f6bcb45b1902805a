#!/usr/bin/env python3
"""Independent check of the slim-packed format (docs/FORMAT.md) with NumPy + safetensors.

Decodes every packed linear of PACKED_DIR with the NumPy decoder from docs/FORMAT.md and
compares it bit for bit with PLAIN_DIR, the same checkpoint expanded by
`slim-quant convert --dequantize --dtype f32`. Also prints the bits per weight per module.

usage: check_packed.py PACKED_DIR PLAIN_DIR
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def decode(t, P, R, C, G):
    bits = t[P + ".bits"].astype(int)
    scales = t[P + ".scales"].astype(np.float32)
    means = t[P + ".means"].astype(np.float32)
    qw = np.unpackbits(t[P + ".qweight"], axis=1, bitorder="little")
    qz = np.unpackbits(t[P + ".qzeros"], axis=1, bitorder="little")
    W = np.zeros((R, C), np.float32)
    o = oz = m = 0
    for g, b in enumerate(bits):
        w = min(C, (g + 1) * G) - g * G
        q = (qw[:, o:o + w * b].reshape(R, w, b).astype(np.int64) << np.arange(b)).sum(2).astype(np.float32)
        o += w * b
        if b == 1:
            W[:, g * G:g * G + w] = scales[:, g:g + 1] * (2 * q - 1) + means[:, m:m + 1]
            m += 1
        else:
            z = (qz[:, oz:oz + b].astype(np.int64) << np.arange(b)).sum(1, keepdims=True).astype(np.float32)
            oz += b
            W[:, g * G:g * G + w] = scales[:, g:g + 1] * (q - z)
    return W


def main():
    packed_dir, plain_dir = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{packed_dir}/config.json"))
    q = cfg["quantization_config"]
    assert q["format"] == "slim-packed" and q["format_version"] == 1, q
    G = q["group_size"]
    t = load_file(f"{packed_dir}/model.safetensors")
    plain = load_file(f"{plain_dir}/model.safetensors")
    checked = 0
    total_bits = total_weights = 0
    for name in sorted(k for k in t if k.endswith(".qweight")):
        P = name[: -len(".qweight")]
        R, C = plain[P + ".weight"].shape
        W = decode(t, P, R, C, G)
        ref = plain[P + ".weight"]
        if not np.array_equal(W.view(np.uint32), ref.view(np.uint32)):
            bad = np.argwhere(W != ref)[0]
            sys.exit(f"{P}: differs at {tuple(bad)}: numpy {W[tuple(bad)]} vs slim-quant {ref[tuple(bad)]}")
        size = sum(t[P + s].nbytes for s in (".bits", ".qweight", ".scales", ".qzeros", ".means"))
        total_bits += 8 * size
        total_weights += R * C
        checked += 1
    print(f"{checked} packed linears decode bit-identically; {total_bits / total_weights:.4f} bits/weight overall")


if __name__ == "__main__":
    main()
