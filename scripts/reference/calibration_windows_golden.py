#!/usr/bin/env python3
"""Goldens for slim-quant's calibration windows (SlimPipeline.CalibrationSet).

Reproduces, with the reference libraries, the calibration sampling of the reference code:

  * SliM-LLM `datautils.get_wikitext2` on the WikiText-2 train text: rows rebuilt as the Hugging
    Face `wikitext` loader yields them (every line of the raw file, trailing newline kept,
    whitespace-only lines as ""), joined with " ", tokenized once with the tokenizer's special
    tokens, then `random.seed(seed)` and N times `i = random.randint(0, T - L - 1)`,
    window = ids[i:i+L]. Here the train file is ../shared's wiki.train.excerpt.txt (the full
    split is not available) and the tokenizer is SmolLM2-135M's tokenizer.json.
  * GPTQ `datautils.get_c4` document sampling: `random.seed(seed)`, then per window draw
    `d = random.randint(0, len(docs) - 1)` until the document has more than L tokens (each
    document tokenized on its own, special tokens included), then
    `i = random.randint(0, len - L - 1)`. Documents: ../shared's C4 validation subset (the
    train shard is not available), tokenizer: stories260K's tokenizer.json.

Windows are recorded as the sha256 of their ids written as decimal, comma-separated, one window
after another separated by ";" (plus the first 8 ids of each, to make a mismatch readable).

Usage:
    python3 scripts/reference/calibration_windows_golden.py [SHARED_DIR] [OUT_JSON]
defaults: ../shared (relative to the repo root) and
Tests/SlimPipelineTests/Fixtures/calibration_windows_golden.json.
The committed golden was produced with (tokenizers 0.23.x):
    /opt/refenv/bin/python scripts/reference/calibration_windows_golden.py
"""
import gzip
import hashlib
import json
import os
import random
import sys

from tokenizers import Tokenizer

WIKI = {"samples": 8, "length": 2048, "seed": 0}
C4 = {"samples": 6, "length": 256, "seed": 0}


def windows_digest(windows):
    text = ";".join(",".join(str(t) for t in w) for w in windows)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def wikitext_rows(path):
    # datasets/wikitext/wikitext.py: open(..., encoding="utf-8"), one example per line.
    with open(path, encoding="utf-8") as f:
        return [row if row.strip() else "" for row in f]


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(root), "shared")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        root, "Tests", "SlimPipelineTests", "Fixtures", "calibration_windows_golden.json")

    # WikiText-2 (SliM-LLM): one string, one tokenization.
    smol = Tokenizer.from_file(os.path.join(shared, "models", "smollm2-135m", "tokenizer.json"))
    text = " ".join(wikitext_rows(os.path.join(shared, "data", "wikitext-2-raw", "wiki.train.excerpt.txt")))
    ids = smol.encode(text).ids
    random.seed(WIKI["seed"])
    offsets = [random.randint(0, len(ids) - WIKI["length"] - 1) for _ in range(WIKI["samples"])]
    wins = [ids[i:i + WIKI["length"]] for i in offsets]
    wiki = dict(WIKI, tokenizer="models/smollm2-135m/tokenizer.json",
                file="data/wikitext-2-raw/wiki.train.excerpt.txt", tokens=len(ids), offsets=offsets,
                windows_sha256=windows_digest(wins), heads=[w[:8] for w in wins])

    # C4 (GPTQ get_c4): documents sampled one at a time.
    stories = Tokenizer.from_file(os.path.join(shared, "models", "stories260K", "tokenizer.json"))
    with gzip.open(os.path.join(shared, "data", "c4", "c4-validation.subset-2000.json.gz"), "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    random.seed(C4["seed"])
    documents, offsets, wins = [], [], []
    for _ in range(C4["samples"]):
        while True:
            d = random.randint(0, len(docs) - 1)
            enc = stories.encode(docs[d]).ids
            if len(enc) > C4["length"]:
                break
        i = random.randint(0, len(enc) - C4["length"] - 1)
        documents.append(d)
        offsets.append(i)
        wins.append(enc[i:i + C4["length"]])
    c4 = dict(C4, tokenizer="models/stories260K/tokenizer.json", file="data/c4/c4-validation.subset-2000.json.gz",
              documents=documents, offsets=offsets, windows_sha256=windows_digest(wins), heads=[w[:8] for w in wins])

    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"wikitext2": wiki, "c4": c4}, f, indent=1)
        f.write("\n")
    print(f"wrote {out}: WikiText-2 T={wiki['tokens']} offsets={wiki['offsets']}; C4 documents={documents}")


if __name__ == "__main__":
    main()
