#!/usr/bin/env python3
"""Tokenizes a corpus with the reference Python tokenizer (TRIE_TOKENIZER of
the `rwkv` PyPI package) and compares its ids with ours.

    pip install --no-deps rwkv==0.8.32
    bench/tokenizer_reference.py CORPUS [--ids OURS.bin] [--vocab FILE]

OURS.bin holds our ids as int32 little endian (tokenizer_bench --ids-out).
Prints `tokens_per_s: X` and, with --ids, `ids identical: yes|no`.
"""
import argparse
import array
import importlib.util
import os
import sys
import time


def load_reference_module():
    # Load rwkv/rwkv_tokenizer.py by path: it needs only the standard library,
    # and this avoids running the package's __init__ (which may import torch
    # in other versions).
    spec = importlib.util.find_spec("rwkv")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("tokenizer_reference: the `rwkv` package is missing; "
                 "pip install --no-deps rwkv==0.8.32")
    pkg_dir = list(spec.submodule_search_locations)[0]
    path = os.path.join(pkg_dir, "rwkv_tokenizer.py")
    mod_spec = importlib.util.spec_from_file_location("rwkv_reference_tokenizer", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module, os.path.join(pkg_dir, "rwkv_vocab_v20230424.txt")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("--ids", help="our ids, int32 little endian, to compare with")
    ap.add_argument("--vocab", help="vocabulary file (default: the package's own)")
    args = ap.parse_args()

    module, package_vocab = load_reference_module()
    t0 = time.perf_counter()
    tok = module.TRIE_TOKENIZER(args.vocab or package_vocab)
    print(f"reference load: {time.perf_counter() - t0:.2f} s")

    with open(args.corpus, "rb") as f:
        corpus = f.read()
    # encodeBytes: the same greedy walk as encode(), on raw bytes, so any
    # corpus (even invalid UTF-8) works.
    t0 = time.perf_counter()
    ids = tok.encodeBytes(corpus)
    dt = time.perf_counter() - t0
    mb = len(corpus) / 1e6
    print(f"reference: {mb:.2f} MB, {len(ids)} tokens, {dt:.2f} s, "
          f"{mb / dt:.3f} MB/s, {len(ids) / dt:.4g} tokens/s")
    print(f"tokens_per_s: {len(ids) / dt:.6g}")

    if args.ids:
        ours = array.array("i")
        with open(args.ids, "rb") as f:
            ours.frombytes(f.read())
        if sys.byteorder != "little":
            ours.byteswap()
        same = ours.tolist() == ids
        if not same:
            first = next((i for i, (a, b) in enumerate(zip(ours, ids)) if a != b),
                         min(len(ours), len(ids)))
            print(f"first difference at token {first} (ours {len(ours)} tokens, "
                  f"reference {len(ids)})")
        print(f"ids identical: {'yes' if same else 'no'}")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
