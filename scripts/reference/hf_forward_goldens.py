#!/usr/bin/env python3
"""Hugging Face fp32 forward-pass goldens for the SlimRuntime parity tests.

For each model this runs transformers' LlamaForCausalLM on the CPU in float32 (eager
attention, the plain matmul/softmax formulation) and records what the Swift runtime must
reproduce. Token ids are computed here with the model's own tokenizer (`tokenizers`
library) and stored, so the Swift tests need no tokenizer.

Outputs, in OUT_DIR (default Tests/SlimRuntimeTests/Fixtures relative to the repo root):

  stories260K.json.gz   ../shared/models/stories260K. One window of 512 tokens: BOS + the
                        first 511 tokens of WikiText-2 test (wiki.test.raw). Stores the ids,
                        per-position NLL of the next token and their mean, full logits rows at
                        positions 0, 1, T/2, T-1, per-row statistics for every row (max,
                        argmax, logsumexp), the inputs of the q/o/gate/down projections of
                        layers 1 and 4 at rows 0, T/2, T-1 (captured with forward pre-hooks),
                        the rotary inverse frequencies, and the greedy continuation of
                        "Once upon a time" (BOS prepended) from generate(do_sample=False).
  smollm2-135m.json.gz  SmolLM2-135M (F32 directory, see below). A 128-token window (first
                        128 tokens of wiki.test.raw, no BOS: this tokenizer adds none) with the
                        same per-row records (full rows at 0, 23 and 127 only, to keep the file small; the
                        debug-build test checks the first 24 positions), a 2048-token window
                        (ids, NLLs, per-row statistics), and the greedy
                        continuation (16 tokens) of "The capital of France is Paris. The capital
                        of Germany is".
  tiny-llama.json.gz    Tests/SlimIOTests/Fixtures/gguf/tiny-llama.{f32,f16,bf16}.safetensors
                        with tiny-llama.config.json (a 1-layer model, tied embeddings, rope
                        theta 5e5): logits of all rows for a fixed 24-token sequence, per
                        dtype (F16/BF16 weights are widened to fp32 by transformers exactly as
                        the runtime does).
  rope.json.gz          inverse frequencies from transformers' ROPE_INIT_FUNCTIONS for the
                        default rope and for llama3 scaling (Llama 3.1/3.2 parameter sets).

Float arrays are stored as base64 of little-endian float32 bytes ("f32b64") so they are
exact; scalars (NLL means, statistics) as JSON numbers (float64 computed from the fp32
tensors). Files are gzip with mtime 0 (byte-reproducible for the same inputs).

Usage:
    /opt/refenv/bin/python scripts/reference/hf_forward_goldens.py [--smollm2 DIR] [--shared DIR] [--out DIR]
--smollm2 defaults to $SLIM_SMOLLM2_DIR, else ~/.cache/slim-quant-fixtures/smollm2-135m-f32
(built by ../shared/scripts/prepare-smollm2.sh DEST f32); --shared defaults to ../shared.
The committed outputs were produced with (transformers 5.23.0, torch 2.13.0+cpu):
    /opt/refenv/bin/python scripts/reference/hf_forward_goldens.py --smollm2 /tmp/smollm2-f32
"""
import argparse
import base64
import gzip
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def f32b64(x):
    """Exact float32 array encoding: base64 of the little-endian bytes."""
    a = np.ascontiguousarray(np.asarray(x, dtype="<f4")).reshape(-1)
    return base64.b64encode(a.tobytes()).decode("ascii")


def write_gz(path, obj):
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(data)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def load_model(directory):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def wiki_text(shared):
    with open(os.path.join(shared, "data", "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8") as f:
        return f.read(60000)


@torch.no_grad()
def forward_logits(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float()


def window_record(logits, ids, full_rows):
    """NLLs, row statistics and some full rows of one window's logits [T, V]."""
    T = len(ids)
    logp = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(ids[1:], dtype=torch.long)
    nll = -logp[:-1].gather(1, targets[:, None])[:, 0]
    lse = torch.logsumexp(logits, dim=-1)
    mx, am = logits.max(dim=-1)
    return {
        "tokens": ids,
        "nll": f32b64(nll.numpy()),
        "mean_nll": float(nll.double().mean()),
        "row_max": f32b64(mx.numpy()),
        "row_argmax": [int(i) for i in am],
        "row_logsumexp": f32b64(lse.numpy()),
        "rows": {str(r): f32b64(logits[r].numpy()) for r in full_rows},
    }


@torch.no_grad()
def greedy(model, prompt_ids, new_tokens):
    out = model.generate(torch.tensor([prompt_ids], dtype=torch.long), do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens, eos_token_id=None,
                         pad_token_id=0)
    return [int(i) for i in out[0, len(prompt_ids):]]


@torch.no_grad()
def captured_inputs(model, ids, layers, rows):
    """Inputs of q_proj / o_proj / gate_proj / down_proj (forward pre-hooks) at some rows."""
    kinds = {"q_proj": "self_attn", "o_proj": "self_attn", "gate_proj": "mlp", "down_proj": "mlp"}
    seen = {}
    hooks = []
    for layer in layers:
        for name, block in kinds.items():
            module = getattr(getattr(model.model.layers[layer], block), name)

            def hook(mod, args, layer=layer, name=name):
                seen[f"{layer}.{name}"] = args[0][0].detach().clone()

            hooks.append(module.register_forward_pre_hook(hook))
    model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    for h in hooks:
        h.remove()
    return {key: {"cols": int(x.shape[1]), "rows": {str(r): f32b64(x[r].numpy()) for r in rows}}
            for key, x in seen.items()}


def stories(shared, out_dir):
    directory = os.path.join(shared, "models", "stories260K")
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    model = load_model(directory)
    bos = model.config.bos_token_id
    T = 512
    ids = [bos] + tok.encode(wiki_text(shared), add_special_tokens=False).ids[: T - 1]
    assert len(ids) == T
    logits = forward_logits(model, ids)
    record = {"model": "stories260K", "window": window_record(logits, ids, [0, 1, T // 2, T - 1])}
    record["captures"] = captured_inputs(model, ids, [1, 4], [0, T // 2, T - 1])
    record["inv_freq"] = f32b64(model.model.rotary_emb.inv_freq.numpy())
    prompt = [bos] + tok.encode("Once upon a time", add_special_tokens=False).ids
    generated = greedy(model, prompt, 40)
    text = tok.decode(prompt + generated, skip_special_tokens=True)
    expected = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
                "One day, she saw a big, red ball.")
    assert text.startswith(expected), text
    record["greedy"] = {"prompt": prompt, "generated": generated, "text": text}
    write_gz(os.path.join(out_dir, "stories260K.json.gz"), record)


def smollm2(shared, directory, out_dir):
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    model = load_model(directory)
    all_ids = tok.encode(wiki_text(shared), add_special_tokens=False).ids
    short = all_ids[:128]
    full = all_ids[:2048]
    assert len(full) == 2048
    record = {"model": "smollm2-135m"}
    record["short"] = window_record(forward_logits(model, short), short, [0, 23, 127])
    record["full"] = window_record(forward_logits(model, full), full, [])
    prompt = tok.encode("The capital of France is Paris. The capital of Germany is", add_special_tokens=False).ids
    generated = greedy(model, prompt, 16)
    assert generated[0] == 11452, generated
    record["greedy"] = {"prompt": prompt, "generated": generated,
                        "text": tok.decode(prompt + generated, skip_special_tokens=False)}
    write_gz(os.path.join(out_dir, "smollm2-135m.json.gz"), record)


def tiny_llama(out_dir):
    fixtures = os.path.join(ROOT, "Tests", "SlimIOTests", "Fixtures", "gguf")
    ids = [1, 5, 9, 2, 31, 0, 17, 17, 4, 30, 12, 8, 3, 22, 27, 6, 11, 19, 25, 14, 7, 28, 10, 1]
    record = {"model": "tiny-llama", "tokens": ids, "logits": {}}
    for dtype in ["f32", "f16", "bf16"]:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(fixtures, "tiny-llama.config.json"), os.path.join(tmp, "config.json"))
            shutil.copy(os.path.join(fixtures, f"tiny-llama.{dtype}.safetensors"), os.path.join(tmp, "model.safetensors"))
            model = load_model(tmp)
            record["logits"][dtype] = f32b64(forward_logits(model, ids).numpy())
    write_gz(os.path.join(out_dir, "tiny-llama.json.gz"), record)


def rope(out_dir):
    cases = [
        ("default-theta1e4-d8", dict(rope_theta=10000.0, head_dim=8)),
        ("default-theta1e5-d64", dict(rope_theta=100000.0, head_dim=64)),
        ("llama3.1-theta5e5-d128", dict(rope_theta=500000.0, head_dim=128, rope_scaling=dict(
            rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=8192))),
        ("llama3.2-theta5e5-d64", dict(rope_theta=500000.0, head_dim=64, rope_scaling=dict(
            rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=8192))),
    ]
    record = {"cases": []}
    for name, params in cases:
        scaling = params.get("rope_scaling")
        cfg = LlamaConfig(hidden_size=params["head_dim"] * 4, num_attention_heads=4, head_dim=params["head_dim"],
                          rope_theta=params["rope_theta"], rope_scaling=scaling, max_position_embeddings=131072)
        rope_type = scaling["rope_type"] if scaling else "default"
        if rope_type == "default":
            from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
            inv_freq, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
        else:
            inv_freq, _ = ROPE_INIT_FUNCTIONS[rope_type](cfg, torch.device("cpu"))
        positions = [0, 1, 7, 100, 2047, 8191, 100000]
        freqs = torch.tensor(positions, dtype=torch.float)[:, None] * inv_freq.float()[None, :]
        record["cases"].append({
            "name": name, "rope_theta": params["rope_theta"], "head_dim": params["head_dim"],
            "rope_scaling": scaling, "inv_freq": f32b64(inv_freq.numpy()), "positions": positions,
            "cos": f32b64(freqs.cos().numpy()), "sin": f32b64(freqs.sin().numpy()),
        })
    write_gz(os.path.join(out_dir, "rope.json.gz"), record)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_smol = os.environ.get("SLIM_SMOLLM2_DIR") or os.path.expanduser("~/.cache/slim-quant-fixtures/smollm2-135m-f32")
    p.add_argument("--smollm2", default=default_smol)
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    p.add_argument("--out", default=os.path.join(ROOT, "Tests", "SlimRuntimeTests", "Fixtures"))
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    rope(args.out)
    tiny_llama(args.out)
    stories(args.shared, args.out)
    smollm2(args.shared, args.smollm2, args.out)


if __name__ == "__main__":
    main()
