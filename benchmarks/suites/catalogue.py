"""How decoding and `prepare` scale with the catalogue: synthetic catalogues of 1k to 1M items.

    python -m benchmarks catalogue [--sizes 1000 10000 100000 1000000] [--users 16]
        -> results/catalogue/scaling.json

The same users (fixed random prompts of 96 tokens, the real SmolLM2-135M) are decoded against each
catalogue, top-10 with 20 beams, with and without excluding 20 history items per user:
- semantic ids: 3 levels, codebook = the smallest power of two >= 64 whose cube holds twice the
  items (the id builder's default is 64; 1M items need 128), distinct random codes;
- title ids: 2-6 words drawn from the built-in ML-100K titles' words plus a year, made unique as the
  title id builder does, tokenised by the real tokenizer (up to 32 tokens);
- atomic ids: one new token per item; the catalogue softmax (`catalogue_scores`), no trie.
Per row: users/s, trie build seconds and the process's resident memory growth while building it.
Then `prepare`'s cost per 1k items: text embeddings (decoder only, as `prepare` now runs it, vs the
whole model with its vocabulary head, as it ran before; and a second pass over the same texts, read
from the cache) and collaborative embeddings (SVD of synthetic interactions).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import record
from llmrec.backbone import load_model, load_tokenizer, resize_for_tokenizer, resolve_dtype
from llmrec.config import DataConfig
from llmrec.data import SplitData
from llmrec.data.importers import load_catalog
from llmrec.generate.atomic import catalogue_scores
from llmrec.generate.beam import beam_search
from llmrec.generate.trie import ItemTrie
from llmrec.ids.embeddings import collaborative_embeddings, text_embeddings


def rss_mib() -> float:
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def codebook_for(items: int) -> int:
    size = 64
    while size**3 < 2 * items:
        size *= 2
    return size


def semantic_sequences(items: int, base: int, rng: np.random.Generator) -> tuple[list[list[int]], int]:
    size = codebook_for(items)
    codes = rng.choice(size**3, size=items, replace=False)
    seqs = np.stack([codes // size**2, codes // size % size, codes % size], axis=1) + base
    seqs[:, 1] += size
    seqs[:, 2] += 2 * size
    return seqs.tolist(), 3 * size


def title_sequences(items: int, tokenizer, rng: np.random.Generator) -> list[list[int]]:
    titles = load_catalog(DataConfig(format="movielens", path="builtin:ml-100k")).items["title"]
    words = sorted({w for t in titles for w in re.findall(r"[A-Za-z']+", t) if len(w) > 2})
    taken: set[str] = set()
    out = []
    for _ in range(items):
        base = " ".join(rng.choice(words, size=rng.integers(2, 7))) + f" ({rng.integers(1920, 2025)})"
        title, n = base, 1
        while title in taken:  # unique, as `title_ids` makes them
            n += 1
            title = f"{base} ({n})"
        taken.add(title)
        out.append(title)
    seqs = []
    for start in range(0, items, 10_000):
        seqs += tokenizer(
            out[start : start + 10_000], add_special_tokens=False, truncation=True, max_length=32
        ).input_ids
    return seqs


def set_vocab(model, size: int) -> None:
    """Grow (new rows as training starts them) or shrink the embedding matrix to `size` rows."""
    if size > model.get_input_embeddings().weight.shape[0]:
        resize_for_tokenizer(model, range(size))  # it reads only the length
    else:
        model.resize_token_embeddings(size, mean_resizing=False)


def decode_rows(args, model, tokenizer, base_vocab: int) -> list[dict]:
    rng = np.random.default_rng(0)
    prompts = rng.integers(100, base_vocab, size=(args.users, 96)).tolist()
    rows = []
    for items in args.sizes:
        history = [rng.choice(items, size=20, replace=False).tolist() for _ in range(args.users)]
        for scheme in args.schemes:
            before = rss_mib()
            t0 = time.perf_counter()
            extra = 0
            if scheme == "semantic":
                seqs, extra = semantic_sequences(items, base_vocab, rng)
            elif scheme == "title":
                seqs = title_sequences(items, tokenizer, rng)
            else:
                extra = items
            trie = ItemTrie(seqs, tokenizer.eos_token_id) if scheme != "atomic" else None
            build_s = time.perf_counter() - t0
            grown = rss_mib() - before
            set_vocab(model, base_vocab + extra)
            for exclude in (False, True):
                excluded = history if exclude else None
                t0 = time.perf_counter()
                with torch.inference_mode():
                    for start in range(0, args.users, args.batch):
                        batch = prompts[start : start + args.batch]
                        ex = excluded[start : start + args.batch] if excluded else None
                        if trie is None:
                            tokens = list(range(base_vocab, base_vocab + items))
                            scores = catalogue_scores(model, batch, tokens, pad_id=0, exclude=ex)
                            scores.topk(10, dim=-1)
                        else:
                            beam_search(model, batch, trie, num_beams=20, top_k=10, pad_id=0, exclude=ex)
                seconds = time.perf_counter() - t0
                row = {
                    "items": items,
                    "scheme": scheme,
                    "exclude_history": exclude,
                    "users_per_s": round(args.users / seconds, 3),
                    "trie_build_s": round(build_s, 2),
                    "trie_mib": round(grown, 1),
                    "trie_nodes": len(trie.children) if trie else 0,
                }
                if scheme == "semantic":
                    row["codebook"] = codebook_for(items)
                print(json.dumps(row), flush=True)
                rows.append(row)
            del trie
    return rows


def prepare_rows(args, model, tokenizer) -> dict:
    """Seconds per 1k items of the two embedding passes `prepare` runs for semantic ids."""
    industrial_like = [
        f"Item {n}: stainless steel fitting, {n % 97} mm, for industrial and lab use, pack of {n % 12 + 1}"
        for n in range(args.text_items)
    ]
    out: dict = {"text_items": args.text_items, "max_tokens": 64}

    @torch.no_grad()
    def with_head(texts: list[str]) -> None:  # the pass as it ran before: the whole model, every hidden state
        for start in range(0, len(texts), 32):
            batch = tokenizer(
                texts[start : start + 32], return_tensors="pt", padding=True, truncation=True, max_length=64
            )
            model(**batch, output_hidden_states=True).hidden_states[-1].float()

    with tempfile.TemporaryDirectory() as cache:
        timings = {"whole_model": [], "decoder_only": []}
        for _ in range(2):  # alternate, so drift hits both alike
            t0 = time.perf_counter()
            with_head(industrial_like)
            timings["whole_model"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text_embeddings(industrial_like, model, tokenizer)
            timings["decoder_only"].append(time.perf_counter() - t0)
        text_embeddings(industrial_like, model, tokenizer, cache_folder=Path(cache))
        t0 = time.perf_counter()
        text_embeddings(industrial_like, model, tokenizer, cache_folder=Path(cache))
        cached = time.perf_counter() - t0
    per_1k = lambda s: round(min(s) * 1000 / args.text_items, 2)  # noqa: E731
    out["text_s_per_1k_items"] = {
        "whole_model_before": per_1k(timings["whole_model"]),
        "decoder_only_now": per_1k(timings["decoder_only"]),
        "cached_second_run": per_1k([cached]),
    }
    out["collaborative_s_per_1k_items"] = {}
    rng = np.random.default_rng(0)
    for items in args.sizes[:3]:
        users = max(1000, items // 2)
        seqs = [[f"i{j}" for j in rng.integers(0, items, size=20)] for _ in range(users)]
        catalogue = pd.DataFrame({"item": [f"i{j}" for j in range(items)], "title": "", "text": ""})
        split = SplitData(items=catalogue, users=pd.DataFrame({"user": range(users), "train": seqs}))
        t0 = time.perf_counter()
        collaborative_embeddings(split)
        out["collaborative_s_per_1k_items"][str(items)] = round((time.perf_counter() - t0) * 1000 / items, 3)
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--schemes", nargs="+", default=["semantic", "title", "atomic"])
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--text-items", type=int, default=256)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, args.dtype).eval()
    base_vocab = model.get_input_embeddings().weight.shape[0]
    started = time.time()
    sizes = decode_rows(args, model, tokenizer, base_vocab)
    prepare = prepare_rows(args, model, tokenizer)

    def ratio(scheme: str, exclude: bool, big: int) -> float | None:
        pick = {
            r["items"]: r["users_per_s"]
            for r in sizes
            if r["scheme"] == scheme and r["exclude_history"] == exclude
        }
        return round(pick[big] / pick[1000], 3) if big in pick and 1000 in pick else None

    metrics = {
        "what": "the same users decoded against synthetic catalogues (top-10, 20 beams; atomic: the "
        "catalogue softmax), and prepare's embedding passes per 1k items",
        "users": args.users,
        "sizes": sizes,
        "ratio_100k_over_1k": ratio("semantic", True, 100_000),
        "ratios_over_1k": {
            f"{s}{'_exclude' if e else ''}@{n}": ratio(s, e, n)
            for s in args.schemes
            for e in (False, True)
            for n in args.sizes
            if n != 1000
        },
        "prepare": prepare,
    }
    summary = {"semantic users/s 100k / 1k": metrics["ratio_100k_over_1k"]}
    record(
        "catalogue",
        "scaling",
        metrics,
        summary,
        dataset="synthetic",
        variant="sizes",
        config={"model": args.model, "dtype": resolve_dtype(args.dtype), "sizes": args.sizes},
        timings={"wall_s": round(time.time() - started, 1)},
    )


if __name__ == "__main__":  # also: python -m benchmarks SUITE
    main()
