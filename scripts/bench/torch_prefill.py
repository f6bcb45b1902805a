#!/usr/bin/env python3
"""Baseline for slim-bench's `prefill` section: PyTorch CPU (transformers) on the same workloads.

usage: torch_prefill.py MODEL_DIR THREADS REPS CTX[,CTX...] DECODE_CONTEXT DECODE_STEPS

prefill  the eval-ppl workload: one forward over a window of CTX tokens (fp32, no KV cache)
         plus scoring, i.e. the mean cross-entropy of logits[:-1] against ids[1:]. Best of REPS
         after one warm-up; tokens/s = CTX / seconds.
decode   a DECODE_CONTEXT-token prompt is prefilled into the KV cache (not timed), then
         DECODE_STEPS greedy single-token steps are timed (best of REPS, each from a fresh
         cache); tokens/s = DECODE_STEPS / seconds.

Window ids are deterministic (i * 7919 + 13) mod vocab: speed does not depend on the text.
transformers' default attention implementation (sdpa) is used: the fastest stock PyTorch path.
Prints one JSON object per line: {"kind": "info", ...}, then {"kind": "prefill", "ctx", "seconds",
"tokens_per_second"} per CTX and {"kind": "decode", "context", "steps", "seconds", "tokens_per_second"}.
Exits 3 with a message on stderr when torch or transformers cannot be imported.
"""
import json
import os
import sys
import time


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__.split("\n\n")[1])
    model_dir, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    contexts = [int(c) for c in sys.argv[4].split(",") if c]
    decode_context, decode_steps = int(sys.argv[5]), int(sys.argv[6])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print(f"torch/transformers unavailable: {e}", file=sys.stderr)
        sys.exit(3)
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    emit({"kind": "info", "torch": torch.__version__, "transformers": transformers.__version__,
          "threads": torch.get_num_threads(), "attention": model.config._attn_implementation})

    def ids(n):
        return torch.tensor([[(i * 7919 + 13) % vocab for i in range(n)]], dtype=torch.long)

    with torch.inference_mode():
        for ctx in contexts:
            window = ids(ctx)

            def prefill():
                logits = model(window, use_cache=False).logits[0]
                return torch.nn.functional.cross_entropy(logits[:-1], window[0, 1:]).item()

            prefill()  # warm-up
            best = min(timed(prefill) for _ in range(reps))
            emit({"kind": "prefill", "ctx": ctx, "seconds": best, "tokens_per_second": ctx / best})

        if decode_steps > 0:
            prompt = ids(decode_context)

            def decode():
                out = model(prompt, use_cache=True)
                cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
                start = time.perf_counter()
                for _ in range(decode_steps):
                    out = model(nxt, past_key_values=cache, use_cache=True)
                    cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
                return time.perf_counter() - start

            decode()  # warm-up
            best = min(decode() for _ in range(reps))
            emit({"kind": "decode", "context": decode_context, "steps": decode_steps, "seconds": best,
                  "tokens_per_second": decode_steps / best})


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
