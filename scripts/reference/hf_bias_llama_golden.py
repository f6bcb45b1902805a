#!/usr/bin/env python3
"""A tiny LLaMA with every bias (attention_bias and mlp_bias) and its Hugging Face logits.

No real checkpoint in ../shared has biases, yet LlamaConfig allows them on every projection and
the runtime (CPU and GPU, dense and packed) adds them. This builds a 2-layer random model with
transformers (seeded; weights and biases drawn at a scale that gives non-trivial logits),
saves it with save_pretrained (config.json + model.safetensors, F32, untied classifier, GQA
4/2 heads, intermediate size 48 so groups of 32 leave a short last group), and records
transformers' fp32 logits (eager attention) for a fixed 24-token sequence.

Outputs (OUT_DIR defaults to Tests/SlimRuntimeTests/Fixtures):
  bias-llama/config.json, bias-llama/model.safetensors
  bias-llama.json.gz   {"tokens": [...], "logits": f32b64 [24 × vocab]}

Usage: /opt/refenv/bin/python scripts/reference/hf_bias_llama_golden.py [--out DIR]
The committed outputs were produced with transformers 5.23.0, torch 2.13.0+cpu.
"""
import argparse
import base64
import gzip
import json
import os

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def f32b64(x):
    a = np.ascontiguousarray(np.asarray(x, dtype="<f4")).reshape(-1)
    return base64.b64encode(a.tobytes()).decode("ascii")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "Tests", "SlimRuntimeTests", "Fixtures"))
    args = p.parse_args()
    torch.manual_seed(1234)
    config = LlamaConfig(vocab_size=48, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                         rms_norm_eps=1e-5, rope_theta=10000.0, attention_bias=True, mlp_bias=True,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.1 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
            else:
                param.copy_(torch.randn_like(param) / param.shape[-1] ** 0.5)
    directory = os.path.join(args.out, "bias-llama")
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    for extra in os.listdir(directory):  # keep only what the tests read
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(directory, extra))
    ids = [1, 5, 9, 2, 31, 0, 17, 17, 4, 30, 12, 8, 3, 22, 27, 6, 11, 19, 25, 14, 7, 47, 40, 1]
    reloaded = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = reloaded(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
    data = json.dumps({"model": "bias-llama", "tokens": ids, "logits": f32b64(logits)}, separators=(",", ":")).encode()
    path = os.path.join(args.out, "bias-llama.json.gz")
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
        g.write(data)
    print(f"wrote {directory} and {path}")


if __name__ == "__main__":
    main()
