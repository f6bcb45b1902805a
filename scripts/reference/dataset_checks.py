#!/usr/bin/env python3
"""Golden values for SlimData's dataset recipes, computed the way the reference code does.

The reference pipelines (GPTQ / SliM-LLM datautils.py) get their strings from Hugging Face
`datasets`; the loading scripts behind those datasets are reproduced here line for line
(they are three lines each), applied to the original files:

  wikitext (datasets/wikitext/wikitext.py, _generate_examples):
      for row in open(file, encoding="utf-8"): text = row if row.strip() else ""
  ptb_text_only (datasets/ptb_text_only/ptb_text_only.py, _generate_examples):
      for line in open(file, encoding="utf-8"): sentence = line.strip()
  allenai/c4 via the datasets JSON loader: one JSON object per line, field "text".

and then the datautils joins:
  WikiText-2 eval:        "\n\n".join(test["text"])
  WikiText-2 calibration: " ".join(train["text"])            (SliM-LLM)
  PTB:                    " ".join(data["sentence"])
  C4 eval ("c4-new"):     " ".join(valdata[:1100]["text"])   (token truncation happens later)

For each result: length in characters (Python len = code points), UTF-8 bytes, sha256 of the
UTF-8 bytes, and the row count.

Usage (standard library only):
    python3 scripts/reference/dataset_checks.py [DATA_DIR] [OUT_JSON]
defaults: ../shared/data relative to the repo root, Tests/SlimDataTests/Fixtures/dataset_goldens.json.
The committed golden was produced with:
    /opt/refenv/bin/python scripts/reference/dataset_checks.py ../shared/data
"""
import gzip
import hashlib
import json
import os
import sys
import tempfile


def wikitext_rows(path):
    with open(path, encoding="utf-8") as f:
        return [row if row.strip() else "" for row in f]


def ptb_sentences(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f]


def c4_texts(path, limit=None):
    opener = gzip.open if path.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            texts.append(json.loads(line)["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


def summary(text, rows):
    data = text.encode("utf-8")
    return {"characters": len(text), "utf8_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "rows": rows}


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "data")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "Tests", "SlimDataTests", "Fixtures", "dataset_goldens.json")
    results = {}

    def add(key, text, rows, file):
        entry = summary(text, rows)
        entry["file"] = file
        results[key] = entry

    wt = "wikitext-2-raw"
    for split, name in [("test", "wiki.test.raw"), ("validation", "wiki.valid.raw")]:
        rows = wikitext_rows(os.path.join(data, wt, name))
        add(f"wikitext2/{split}/eval", "\n\n".join(rows), len(rows), f"{wt}/{name}")
    for split, name in [("validation", "wiki.valid.raw"), ("train-excerpt", "wiki.train.excerpt.txt")]:
        rows = wikitext_rows(os.path.join(data, wt, name))
        add(f"wikitext2/{split}/calibration", " ".join(rows), len(rows), f"{wt}/{name}")

    for split, name in [("test", "ptb.test.txt"), ("validation", "ptb.valid.txt"), ("train", "ptb.train.txt")]:
        sentences = ptb_sentences(os.path.join(data, "ptb", name))
        add(f"ptb/{split}", " ".join(sentences), len(sentences), f"ptb/{name}")

    c4 = "c4/c4-validation.subset-2000.json.gz"
    docs = c4_texts(os.path.join(data, c4), limit=1100)
    add("c4-subset/validation/eval", " ".join(docs), len(docs), c4)
    docs = c4_texts(os.path.join(data, c4))
    add("c4-subset/validation/all", " ".join(docs), len(docs), c4)

    # Small inputs exercising the line and whitespace rules (universal newlines, Unicode
    # whitespace that str.strip() removes, separators that are not line breaks for files).
    edge_inputs = [
        "a\nb",
        " \n = T = \n \n x y \n",
        "one\r\ntwo\rthree\n\n",
        "\u3000\n\x1c\nlast",
        "\u00a0 lead and trail \u2003\n\tt\x85ab\u2028c \n",
        "",
        "\n\n",
        "\ufeffbom line \n",
    ]
    edge = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(edge_inputs):
            path = os.path.join(tmp, f"edge{i}.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            rows = wikitext_rows(path)
            sentences = ptb_sentences(path)
            edge.append({"input": text, "wikitext_eval": "\n\n".join(rows), "wikitext_calibration": " ".join(rows),
                         "wikitext_rows": len(rows), "ptb": " ".join(sentences)})

    golden = {
        "edge_cases": edge,
        "generator": "scripts/reference/dataset_checks.py (Python %d.%d)" % sys.version_info[:2],
        "results": results,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(results)} results to {out}")


if __name__ == "__main__":
    main()
