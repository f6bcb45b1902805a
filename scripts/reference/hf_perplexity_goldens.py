#!/usr/bin/env python3
"""Hugging Face perplexity goldens for `slim-quant eval-ppl` (Tests/SlimFrontendTests/EvalPPLParityTests).

Runs transformers' LlamaForCausalLM on the CPU in float32 (eager attention, torch threads
set by --threads, default 2) and evaluates WikiText-2 test exactly as the reference code does:

paper protocol (GPTQ / SliM-LLM `llama_eval`)
    text = "\\n\\n".join(rows of wiki.test.raw as Hugging Face `datasets` yields them: each line
    keeps its "\\n", whitespace-only lines become ""), tokenized ONCE by the model's tokenizer
    (PreTrainedTokenizerFast on the directory's tokenizer.json, special tokens added as its
    post-processor says: BOS for stories260K, nothing for SmolLM2); windows
    i*ctx ..< (i+1)*ctx, the remainder dropped; per window CrossEntropyLoss (mean) of
    logits[:-1] against ids[1:]; PPL = exp(mean of the window losses).
llama.cpp protocol (`perplexity`)
    the raw bytes of wiki.test.raw tokenized with BOS; chunks of ctx tokens whose first token
    is replaced by BOS; logits at positions ctx/2 .. ctx-2 score the next token;
    PPL = exp(total NLL / positions scored).

Why not AutoTokenizer: with transformers 5.x, SmolLM2's tokenizer_config.json
("tokenizer_class": "GPT2Tokenizer") makes AutoTokenizer rebuild a GPT-2 tokenizer from the
vocabulary and merges, dropping tokenizer.json's Digits(individual_digits) pre-tokenizer: on
WikiText-2 test it yields 304,986 tokens instead of the trained tokenizer's 304,978 (first
difference at token 66,557: without the digit split, the whitespace run " \\n\\n\\n " before
"1" is cut as "Ġ" "ĊĊĊ" "Ġ" instead of "ĠĊĊ" "ĊĠ"). transformers 4.x loaded tokenizer.json as
is. The script checks its ids against the `tokenizers` library on the same file.

The loss is computed from the fp32 logits with log-softmax in float64 (the reference code
accumulates the same quantity in float32; the difference is ~1e-7 relative, far below the
0.05 % parity bound) and every value is stored as a JSON number (float64).

Outputs (default OUT_DIR = Tests/SlimFrontendTests/Fixtures/ppl relative to the repo root):
  stories260K-paper-ctx512.json      stories260K, paper protocol, ctx 512, first 8 windows
  stories260K-llamacpp-ctx512.json   stories260K, llama.cpp protocol, ctx 512, first 4 chunks
  smollm2-135m-paper-ctx2048.json    SmolLM2-135M, paper protocol, ctx 2048, first --smollm2-windows
Each holds: protocol, ctx, windows, tokens (length of the whole token stream), positions
scored, the first 16 ids of the stream, window_mean_nll (one per window), ppl, the text's
sha256, and library versions.

--full runs the whole SmolLM2-135M paper evaluation (every 2048-token window) and writes
smollm2-135m-paper-ctx2048-full.json with the same fields plus wall time and tokens/s.

Usage:
    /opt/refenv/bin/python scripts/reference/hf_perplexity_goldens.py [--shared DIR] [--smollm2 DIR]
        [--out DIR] [--threads N] [--smollm2-windows N] [--full]
--shared defaults to ../shared relative to the repo root; --smollm2 to $SLIM_SMOLLM2_DIR, else
~/.cache/slim-quant-fixtures/smollm2-135m-f32 (built by ../shared/scripts/prepare-smollm2.sh DEST f32).

The committed outputs were produced with (transformers 5.23.0, torch 2.13.0+cpu, tokenizers 0.23.3):
    /opt/refenv/bin/python scripts/reference/hf_perplexity_goldens.py
    nice /opt/refenv/bin/python scripts/reference/hf_perplexity_goldens.py --full
"""
import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Rows of logits turned into float64 at a time (bounds memory for a 49,152-token vocabulary).
CHUNK = 256


# MARK: - Data

def wiki_raw_path(shared):
    return os.path.join(shared, "data", "wikitext-2-raw", "wiki.test.raw")


def wiki_paper_text(shared):
    """WikiText-2 test as `"\\n\\n".join(load_dataset('wikitext', 'wikitext-2-raw-v1', split='test')['text'])`."""
    with open(wiki_raw_path(shared), encoding="utf-8", newline="") as f:
        rows = [line if line.strip() else "" for line in f]
    return "\n\n".join(rows)


def wiki_raw_text(shared):
    """The file's bytes as text, as llama.cpp reads it."""
    with open(wiki_raw_path(shared), "rb") as f:
        return f.read().decode("utf-8")


# MARK: - Model

def load(directory):
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(directory, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return tok, model


def tokenize(directory, tok, text):
    """The ids of `text` with special tokens, checked against the `tokenizers` library."""
    ids = tok(text).input_ids
    direct = Tokenizer.from_file(os.path.join(directory, "tokenizer.json")).encode(text).ids
    assert ids == direct, f"{directory}: transformers and tokenizers disagree on the token ids"
    return ids


@torch.no_grad()
def window_nll(model, window):
    """−log p(window[t+1] | window[..t]) for t in 0 ..< T−1, as a float64 tensor."""
    logits = model(torch.tensor([window], dtype=torch.long), use_cache=False).logits[0]
    targets = torch.tensor(window[1:], dtype=torch.long)
    out = []
    for r0 in range(0, len(window) - 1, CHUNK):
        rows = logits[r0:min(r0 + CHUNK, len(window) - 1)].double()
        logp = torch.log_softmax(rows, dim=-1)
        out.append(-logp.gather(1, targets[r0:r0 + rows.shape[0], None])[:, 0])
    return torch.cat(out)


def evaluate(model, ids, ctx, protocol, max_windows, bos, log_every=0):
    """Window mean NLLs and PPL of `ids` under `protocol` ("paper" or "llamacpp")."""
    n = len(ids) // ctx
    if max_windows is not None:
        n = min(n, max_windows)
    first = 0 if protocol == "paper" else ctx // 2
    means, total, count = [], 0.0, 0
    start = time.perf_counter()
    for i in range(n):
        window = list(ids[i * ctx:(i + 1) * ctx])
        if protocol == "llamacpp":
            window[0] = bos
        nll = window_nll(model, window)[first:]
        means.append(float(nll.mean()))
        total += float(nll.sum())
        count += nll.numel()
        if log_every and (i + 1) % log_every == 0:
            el = time.perf_counter() - start
            print(f"  window {i + 1}/{n}: running ppl {math.exp(sum(means) / len(means)):.4f}, "
                  f"{el:.0f} s, eta {el / (i + 1) * (n - i - 1):.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    ppl = math.exp(sum(means) / n) if protocol == "paper" else math.exp(total / count)
    return {"windows": n, "positions_scored": count, "window_mean_nll": means, "ppl": ppl,
            "seconds": seconds, "tokens_per_second": n * ctx / seconds}


def record(name, protocol, ctx, text, ids, result, threads, timing=False):
    rec = {
        "model": name, "dataset": "wikitext2/test", "protocol": protocol, "ctx": ctx,
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "tokens": len(ids), "first_ids": [int(i) for i in ids[:16]],
        "windows": result["windows"], "positions_scored": result["positions_scored"],
        "ppl": result["ppl"], "window_mean_nll": result["window_mean_nll"],
        "reference": {"python": platform.python_version(), "torch": torch.__version__,
                      "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                      "tokenizer": "PreTrainedTokenizerFast(tokenizer.json)",
                      "attention": "eager", "dtype": "float32", "torch_threads": threads},
    }
    if timing:
        rec["seconds"] = result["seconds"]
        rec["tokens_per_second"] = result["tokens_per_second"]
    return rec


def write(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {path}: ppl {obj['ppl']:.6f} over {obj['windows']} windows ({obj['tokens']} tokens)")


# MARK: - Main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--smollm2", default=os.environ.get("SLIM_SMOLLM2_DIR") or
                    os.path.expanduser("~/.cache/slim-quant-fixtures/smollm2-135m-f32"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "SlimFrontendTests", "Fixtures", "ppl"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smollm2-windows", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="whole-WikiText-2 SmolLM2-135M paper PPL at ctx 2048")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    paper_text = wiki_paper_text(args.shared)
    if args.full:
        tok, model = load(args.smollm2)
        ids = tokenize(args.smollm2, tok, paper_text)
        result = evaluate(model, ids, 2048, "paper", None, None, log_every=5)
        write(os.path.join(args.out, "smollm2-135m-paper-ctx2048-full.json"),
              record("smollm2-135m", "paper", 2048, paper_text, ids, result, args.threads, timing=True))
        return

    stories = os.path.join(args.shared, "models", "stories260K")
    tok, model = load(stories)
    bos = model.config.bos_token_id
    ids = tokenize(stories, tok, paper_text)
    assert ids[0] == bos, "stories260K's tokenizer.json adds BOS"
    write(os.path.join(args.out, "stories260K-paper-ctx512.json"),
          record("stories260K", "paper", 512, paper_text, ids, evaluate(model, ids, 512, "paper", 8, bos), args.threads))
    raw = wiki_raw_text(args.shared)
    ids = tokenize(stories, tok, raw)
    write(os.path.join(args.out, "stories260K-llamacpp-ctx512.json"),
          record("stories260K", "llamacpp", 512, raw, ids, evaluate(model, ids, 512, "llamacpp", 4, bos), args.threads))

    tok, model = load(args.smollm2)
    ids = tokenize(args.smollm2, tok, paper_text)
    result = evaluate(model, ids, 2048, "paper", args.smollm2_windows, None)
    write(os.path.join(args.out, "smollm2-135m-paper-ctx2048.json"),
          record("smollm2-135m", "paper", 2048, paper_text, ids, result, args.threads))


if __name__ == "__main__":
    main()
