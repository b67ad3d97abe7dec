#!/usr/bin/env python3
"""Builds CLIP's BPE tokenizer files (vocab.json, merges.txt) from OpenAI's bpe_simple_vocab_16e6.txt.gz.

The id assignment follows OpenAI CLIP's simple_tokenizer: the 256 byte-level symbols of the
GPT-2 byte->unicode alphabet, the same 256 symbols with '</w>' appended, one entry per merge
(the two halves joined), then <|startoftext|> and <|endoftext|>: 49408 entries in all.
Only the first 49152 - 256 - 2 merges of the file are used (the first line is a header).

Importable (build_vocab_and_merges / write_tokenizer_files) or runnable:

    python tests/reference/make_clip_vocab.py [OUT_DIR]

When run it writes OUT_DIR/vocab.json and OUT_DIR/merges.txt (default: a temporary folder)
and reports whether they match the Apple Core ML export in shared/fixtures.
"""
import gzip
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BPE_GZ = os.path.join(REPO, "..", "shared", "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
LICENSE = os.path.join(REPO, "..", "shared", "data", "clip", "LICENSE")
APPLE_DIR = os.path.join(REPO, "..", "shared", "fixtures", "coreml", "sd21-base-palettized",
                         "original", "compiled")

VOCAB_SIZE = 49408
NUM_MERGES = 49152 - 256 - 2  # 48894
MERGES_HEADER = "#version: 0.2"


def byte_alphabet():
    """GPT-2's reversible byte -> printable unicode character table, in byte-id order of the table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
                 + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    byte_ids = list(printable)
    code_points = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_ids.append(b)
            code_points.append(256 + extra)
            extra += 1
    return dict(zip(byte_ids, (chr(c) for c in code_points)))


def read_merges(path=BPE_GZ):
    with gzip.open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]
    assert len(merges) == NUM_MERGES and all(len(m) == 2 for m in merges)
    return merges


def build_vocab_and_merges(path=BPE_GZ):
    """Returns (vocab: dict token -> id, merges: list of (a, b))."""
    merges = read_merges(path)
    symbols = list(byte_alphabet().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == VOCAB_SIZE
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == VOCAB_SIZE, "duplicate token"
    return vocab, merges


def vocab_json_text(vocab):
    # Compact, UTF-8, no trailing newline: the form of the Hugging Face / Apple exports.
    return json.dumps(vocab, ensure_ascii=False, separators=(",", ":"))


def merges_text(merges):
    return MERGES_HEADER + "\n" + "".join(f"{a} {b}\n" for a, b in merges)


def write_tokenizer_files(out_dir, with_license=True):
    """Writes vocab.json, merges.txt (and LICENSE) into out_dir; returns (vocab_path, merges_path)."""
    os.makedirs(out_dir, exist_ok=True)
    vocab, merges = build_vocab_and_merges()
    vocab_path = os.path.join(out_dir, "vocab.json")
    merges_path = os.path.join(out_dir, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8", newline="") as f:
        f.write(vocab_json_text(vocab))
    with open(merges_path, "w", encoding="utf-8", newline="") as f:
        f.write(merges_text(merges))
    if with_license:
        with open(LICENSE, "rb") as src, open(os.path.join(out_dir, "LICENSE"), "wb") as dst:
            dst.write(src.read())
    return vocab_path, merges_path


def compare_with_apple(vocab, merges):
    """Prints whether our vocab / merges match the Apple Core ML export; returns True if content matches."""
    vpath = os.path.join(APPLE_DIR, "vocab.json")
    mpath = os.path.join(APPLE_DIR, "merges.txt")
    if not (os.path.exists(vpath) and os.path.exists(mpath)):
        print("Apple tokenizer files not found; skipping comparison")
        return True
    with open(vpath, encoding="utf-8") as f:
        apple_vocab_text = f.read()
    apple_vocab = json.loads(apple_vocab_text)
    with open(mpath, encoding="utf-8") as f:
        apple_merge_lines = f.read().split("\n")
    apple_merges = [tuple(l.split()) for l in apple_merge_lines[1:] if l]
    vocab_same = apple_vocab == vocab
    merges_same = apple_merges == merges
    print(f"vocab.json: {len(vocab)} entries; content matches Apple's: {vocab_same}; "
          f"bytes identical: {apple_vocab_text == vocab_json_text(vocab)}")
    print(f"merges.txt: {len(merges)} merges; content matches Apple's: {merges_same}; "
          f"header ours {MERGES_HEADER!r} vs Apple {apple_merge_lines[0]!r}")
    if not vocab_same:
        diff = [k for k in vocab if apple_vocab.get(k) != vocab[k]][:5]
        print("  first differing tokens:", diff)
    return vocab_same and merges_same


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else None
    vocab, merges = build_vocab_and_merges()
    ok = compare_with_apple(vocab, merges)
    if out_dir:
        write_tokenizer_files(out_dir)
        print("wrote", out_dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
