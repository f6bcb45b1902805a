#!/usr/bin/env python3
"""Golden token ids for the SlimTokenizer tests, produced by the reference libraries.

Command used for the committed fixtures (from the repository root):

    /opt/refenv/bin/python scripts/reference/tokenizer_goldens.py

Options: --shared DIR (default: ../shared next to the repository root), --out DIR
(default: Tests/SlimTokenizerTests/Fixtures). Requires `tokenizers` (HF) and `sentencepiece`.

Writes gzip-compressed JSON files:
  * golden-<name>.json.gz for the four real tokenizers: the whole WikiText-2 test text as the
    paper's evaluation builds it, encoded as ONE string, plus ~45 tricky strings and 250
    seeded random strings (PALETTE) with their ids (with and without special tokens) and the
    reference decode of those ids;
  * golden-variants.json.gz: the same strings (and a WikiText excerpt) through
    tokenizer.json variants that patch one of the real files (other pre-tokenizers, split
    regexes and behaviours, Metaspace schemes, normalizers, added-token flags, templates), so
    every supported component is checked against `tokenizers` itself.
  * spm-bpe-*.model + golden-spm-trained.json.gz: tiny SentencePiece BPE models trained by
    `sentencepiece` on wiki.valid.raw to cover what LLaMA-2's model does not use (a
    precompiled normalization map with multi-character rules, remove_extra_whitespaces,
    user-defined and control symbols, no byte fallback with unknown-piece merging,
    treat_whitespace_as_suffix, and UNUSED pieces, set by rewriting piece types in the
    serialized model), with the sentencepiece ids and decodes of the tricky strings.
Each file records the reference library and its version.
"""
import argparse
import copy
import gzip
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import tempfile

import sentencepiece
import tokenizers
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WIKI_CHARS = 1_294_336
WIKI_SHA256 = "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83"
EXCERPT_CHARS = 8_000

TRICKY = [
    "",
    " ",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  leading and trailing  ",
    "multiple     spaces   between",
    "tabs\tand\t\ttabs",
    "new\nlines\n\n\nand\r\nCRLF\r\r\n",
    " \n \n  \n",
    "12345 1234567890 3.14159 1,000,000",
    "I'LL don't we're they've I'm you'd she's 'tis 'S 'Re",
    "can\u017ft",
    "<s>Hello</s> <unk> <s> world",
    "<|endoftext|>Hello<|endoftext|> <|im_start|>user\nhi<|im_end|>",
    "text<|endoftext|>",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",
    "cafe\u0301 combining a\u0308 o\u0302\u0323",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u5b57\u7b26",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200D\U0001F469\u200D\U0001F467 flags \U0001F1FA\U0001F1F8",
    "math \u2200x\u2208\u211d: x\u00b2 \u2265 0 \u00bd \u2153 \u2167 \u0663\u0664",
    "\u00a0non-breaking\u00a0space \u2003em\u2003space \u3000ideographic",
    "zero\u200bwidth\ufeffbom \u2028line\u2029para \u0085nel",
    "control \u0001\u0002\u0007\u001b[0m \u007f",
    "replacement \ufffd and private \ue000 and noncharacter \ufdd0",
    "ascii punctuation !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "(hello) [world] {foo} \"quoted\" 'single' \u201csmart\u201d \u2018quotes\u2019",
    "a" * 300,
    "Pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "x" + "\u2581" * 5 + "y \u2581 \u2581\u2581",
    "\u2581leading metaspace",
    "trailing spaces    ",
    "    ",
    "\n",
    "\t\n \t",
    "= = Valkyria Chronicles III = =",
    " @-@ 1 @,@ 000 @.@ 5",
    "Hello\u3000world\u2003again",
    "MiXeD CaSe WORDS and ALLCAPS",
    "\u0130stanbul \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 \u00df \u1e9e \ufb01 \ufb03",
    "e\u0301\u0301\u0301 \u1100\u1161\u11a8",
    "new\U0001F600emoji\U0001F600\U0001F600 x",
    "the the the the",
    "don't stop 'til you get enough",
]

# Random strings over a palette of characters that stress the hand-written regex matchers
# and Unicode classes: every letter/number/mark category, characters assigned after Unicode
# 16 (U+088F, U+11DE0: letters/digits to Swift but not to Oniguruma), all kinds of
# whitespace, contraction letters (including U+017F, which folds to "s"), and special tokens.
PALETTE = (list("aZsStTrReEvVlLdDmM'\"'.,-!?<|>_") + ["\u00e9", "\u017f", "\u01c5", "\u02b0", "\u4e2d", "\u10d0",
           "\u088f", "1", "9", "\u0663", "\u00b2", "\u00bd", "\u216b", "\U00011de0", "\u0301", "\u093f", " ", " ",
           " ", "\t", "\n", "\r", "\u000b", "\u000c", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200d", "\ufe0f",
           "\U0001F642", "\u2581", "\u2019", "<s>", "</s>", "<|endoftext|>", "\ufb01", "\uff21", "\u2460"])


def fuzz_string(n):
    rng = random.Random(1234 + n)
    return "".join(rng.choice(PALETTE) for _ in range(rng.randint(1, 24)))


FUZZ = [fuzz_string(n) for n in range(250)]
CASES = TRICKY + FUZZ


def wikitext(shared):
    path = os.path.join(shared, "data", "wikitext-2-raw", "wiki.test.raw")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    rows = ["" if line == " \n" else line for line in lines]
    text = "\n\n".join(rows)
    assert len(text) == WIKI_CHARS, len(text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert digest == WIKI_SHA256, digest
    return text


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hf_cases(tok, texts):
    out = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=True).ids
        plain = tok.encode(t, add_special_tokens=False).ids
        out.append({
            "text": t,
            "ids": ids,
            "ids_plain": plain,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
        })
    return out


def write(out_dir, name, payload):
    path = os.path.join(out_dir, name)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(path + ".tmp", "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    os.replace(path + ".tmp", path)
    print(f"{name}: {os.path.getsize(path)} bytes")


# Variants: (name, base tokenizer.json relative to shared/models, patch).
# A patch may replace top-level keys ("set"), merge keys into "model" ("model"), or append
# entries to "added_tokens" ("add_tokens").
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMACPP3 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
SMOL = "smollm2-135m/tokenizer.json"
LLAMA = "llama2-tokenizer/tokenizer.json"
BL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def seq(*pts):
    return {"type": "Sequence", "pretokenizers": list(pts)}


def metaspace(scheme, split_=False):
    return {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split_}


META_DECODER = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}

VARIANTS = [
    ("llama3-split", SMOL, {"set": {"pre_tokenizer": seq(split(LLAMA3, "Isolated"), BL_NOREGEX)}}),
    ("qwen2-split", SMOL, {"set": {"pre_tokenizer": seq(split(QWEN2, "Isolated"), BL_NOREGEX)}}),
    ("llamacpp-llama3-split", SMOL, {"set": {"pre_tokenizer": seq(split(LLAMACPP3, "Isolated"), BL_NOREGEX)}}),
    ("gpt2-bytelevel-prefix", SMOL, {"set": {
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}}}),
    ("bytelevel-noregex", SMOL, {"set": {"pre_tokenizer": BL_NOREGEX}}),
    ("digits-contiguous", SMOL, {"set": {"pre_tokenizer": seq(
        {"type": "Digits", "individual_digits": False}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True})}}),
    ("split-removed", SMOL, {"set": {"pre_tokenizer": seq(split(GPT2, "Removed"), BL_NOREGEX)}}),
    ("split-removed-invert", SMOL, {"set": {"pre_tokenizer": seq(split(GPT2, "Removed", True), BL_NOREGEX)}}),
    ("split-merged-previous", SMOL, {"set": {"pre_tokenizer": seq(split(" ", "MergedWithPrevious", literal=True), BL_NOREGEX)}}),
    ("split-merged-next", SMOL, {"set": {"pre_tokenizer": seq(split(" ", "MergedWithNext", literal=True), BL_NOREGEX)}}),
    ("split-contiguous", SMOL, {"set": {"pre_tokenizer": seq(split(" ", "Contiguous", literal=True), BL_NOREGEX)}}),
    ("split-contiguous-invert", SMOL, {"set": {"pre_tokenizer": seq(split(LLAMA3, "Contiguous", True), BL_NOREGEX)}}),
    ("normalizers-bytelevel", SMOL, {"set": {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"String": "  "}, "content": " "}]}}}),
    ("nfd-stripaccents", SMOL, {"set": {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}]}}}),
    ("ignore-merges", SMOL, {"model": {"ignore_merges": True}}),
    ("added-token-flags", SMOL, {"set": {"normalizer": {"type": "Lowercase"}}, "add_tokens": [
        {"id": 49152, "content": "[MASK]", "single_word": False, "lstrip": True, "rstrip": False, "normalized": False, "special": True},
        {"id": 49153, "content": "<sw>", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False, "special": False},
        {"id": 49154, "content": "world", "single_word": False, "lstrip": False, "rstrip": True, "normalized": True, "special": False},
        {"id": 49155, "content": "the", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
        {"id": 49156, "content": "hello world", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True},
    ]}),
    ("metaspace-always-split", LLAMA, {"set": {"pre_tokenizer": metaspace("always", True), "decoder": META_DECODER}}),
    ("metaspace-never", LLAMA, {"set": {"pre_tokenizer": metaspace("never")}}),
    ("metaspace-first-split", LLAMA, {"set": {"pre_tokenizer": metaspace("first", True)}}),
    ("legacy-llama-normalizer", LLAMA, {"set": {"pre_tokenizer": None, "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}}),
    ("bos-eos-template", LLAMA, {"set": {"post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}}),
    ("no-decoder-nfkc", LLAMA, {"set": {"decoder": None, "normalizer": {"type": "NFKC"}}}),
]


def patched(base, patch):
    j = copy.deepcopy(base)
    for k, v in patch.get("set", {}).items():
        j[k] = v
    for k, v in patch.get("model", {}).items():
        j["model"][k] = v
    j["added_tokens"] = j.get("added_tokens", []) + patch.get("add_tokens", [])
    return j


# MARK: tiny SentencePiece models

SPM_RULES = "FB01\t66 69\n2460\t31\nFF21\t41\nA0\t20\n41 42\t61 62 63\n"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def proto_fields(b):
    """(field, wire type, raw bytes of the whole field, payload) for each field."""
    i = 0
    while i < len(b):
        start = i
        key, i = read_varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = read_varint(b, i)
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % w)
        yield f, w, b[start:i], v


def retype_pieces(model_bytes, new_types):
    """Rewrites the type of the pieces named in new_types ({piece: type number})."""
    out = bytearray()
    for f, w, raw, v in proto_fields(model_bytes):
        if f == 1:
            fields = list(proto_fields(v))
            text = next(p for ff, _, _, p in fields if ff == 1).decode("utf-8")
            if text in new_types:
                body = b"".join(r for ff, _, r, _ in fields if ff != 3) + varint(3 << 3) + varint(new_types[text])
                raw = varint(1 << 3 | 2) + varint(len(body)) + body
        out += raw
    return bytes(out)


def train_spm_models(shared, out_dir):
    """Trains the tiny models into out_dir and returns {name: path}."""
    source = os.path.join(shared, "data", "wikitext-2-raw", "wiki.valid.raw")
    tmp = tempfile.mkdtemp()
    try:
        rules = os.path.join(tmp, "rules.tsv")
        with open(rules, "w") as f:
            f.write(SPM_RULES)
        sentencepiece.SentencePieceTrainer.train(
            input=source, model_prefix=os.path.join(tmp, "a"), model_type="bpe", vocab_size=800,
            character_coverage=0.995, byte_fallback=True, user_defined_symbols=["<sep>", "[MASK]"],
            normalization_rule_tsv=rules, num_threads=1, minloglevel=2)
        sentencepiece.SentencePieceTrainer.train(
            input=source, model_prefix=os.path.join(tmp, "b"), model_type="bpe", vocab_size=600,
            character_coverage=0.99, byte_fallback=False, add_dummy_prefix=False, remove_extra_whitespaces=False,
            treat_whitespace_as_suffix=True, normalization_rule_name="identity", control_symbols=["<ctl>"],
            num_threads=1, minloglevel=2)
        with open(os.path.join(tmp, "a.model"), "rb") as f:
            a = f.read()
        paths = {}
        for name, data in [("spm-bpe-nfkc-rules.model", a),
                           ("spm-bpe-suffix-unk.model", open(os.path.join(tmp, "b.model"), "rb").read()),
                           ("spm-bpe-unused.model", retype_pieces(a, {"ell": 5, "ine": 5, "\u2581the": 5, "th": 5}))]:
            path = os.path.join(out_dir, name)
            with open(path, "wb") as f:
                f.write(data)
            paths[name] = path
        return paths
    finally:
        shutil.rmtree(tmp)


SPM_EXTRA = [
    "  Hello  \ufb01ne AB\u2460\uff21\u00a0x  ",
    "\u65e5\u672c <sep>x[MASK] <ctl> ABAB",
    "h\u00e9llo w\u00f6rld \u00a0\u00a0 \u2460\u2460",
    "the thine hell shell theme",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"))
    ap.add_argument("--out", default=os.path.join(REPO, "Tests", "SlimTokenizerTests", "Fixtures"))
    args = ap.parse_args()
    models = os.path.join(args.shared, "models")
    os.makedirs(args.out, exist_ok=True)

    text = wikitext(args.shared)
    hf_ref = f"tokenizers {tokenizers.__version__}"
    sp_ref = f"sentencepiece {sentencepiece.__version__}"

    for name, rel in [("smollm2-json", SMOL), ("stories260k-json", "stories260K/tokenizer.json"),
                      ("llama2-json", LLAMA)]:
        tok = Tokenizer.from_file(os.path.join(models, rel))
        write(args.out, f"golden-{name}.json.gz", {
            "tokenizer": rel, "kind": "tokenizer.json", "reference": hf_ref,
            "text_sha256": sha(text), "text_chars": len(text),
            "ids": tok.encode(text, add_special_tokens=True).ids,
            "cases": hf_cases(tok, CASES),
        })

    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(models, "llama2-tokenizer", "tokenizer.model"))
    bos = sp.bos_id()
    cases = []
    for t in CASES:
        plain = sp.encode(t)
        ids = [bos] + plain
        cases.append({"text": t, "ids": ids, "ids_plain": plain, "decoded": sp.decode(ids),
                      "decoded_skip": sp.decode(ids)})
    write(args.out, "golden-llama2-model.json.gz", {
        "tokenizer": "llama2-tokenizer/tokenizer.model", "kind": "tokenizer.model",
        "reference": sp_ref + " (BOS prepended as LlamaTokenizer does)",
        "text_sha256": sha(text), "text_chars": len(text),
        "ids": [bos] + sp.encode(text), "cases": cases,
    })

    trained = []
    for name, path in train_spm_models(args.shared, args.out).items():
        m = sentencepiece.SentencePieceProcessor(model_file=path)
        cases = []
        for t in CASES + SPM_EXTRA:
            ids = m.encode(t)
            cases.append({"text": t, "ids": ids, "decoded": m.decode(ids)})
        trained.append({"model": name, "excerpt_ids": m.encode(text[:EXCERPT_CHARS]), "cases": cases})
    write(args.out, "golden-spm-trained.json.gz", {
        "reference": sp_ref, "excerpt_chars": EXCERPT_CHARS, "models": trained})

    excerpt = text[:EXCERPT_CHARS]
    variants = []
    bases = {}
    for name, rel, patch in VARIANTS:
        if rel not in bases:
            with open(os.path.join(models, rel), encoding="utf-8") as f:
                bases[rel] = json.load(f)
        tok = Tokenizer.from_str(json.dumps(patched(bases[rel], patch)))
        variants.append({"name": name, "base": rel, "patch": patch,
                         "excerpt_ids": tok.encode(excerpt, add_special_tokens=True).ids,
                         "cases": hf_cases(tok, CASES)})
    write(args.out, "golden-variants.json.gz", {
        "reference": hf_ref, "excerpt_chars": EXCERPT_CHARS, "excerpt_sha256": sha(excerpt), "variants": variants})


if __name__ == "__main__":
    sys.exit(main())
