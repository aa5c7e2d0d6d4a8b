"""Item identifiers: the bijection between catalogue items and the text the LLM generates.

Schemes: `semantic` (residual k-means codes as new special tokens, `<a_12><b_5><c_77>`), `title`
(the title made unique), `numeric` (random integers as text) and `atomic` (one new token per item,
`<item_17>`: the catalogue becomes rows of the output head). All are built from item metadata
and training interactions only; nothing depends on the order of held-out items.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import IdsConfig
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.ids.embeddings import collaborative_embeddings, file_embeddings, item_texts, normalise
from llmrec.ids.rqkmeans import residual_kmeans, resolve_collisions
from llmrec.io import atomic_path, read_json, write_json

LEVEL_NAMES = string.ascii_lowercase


@dataclass
class Codebooks:
    """What places a new item among semantic ids without clustering again (`llmrec items add`): the
    residual k-means centroids of each level, which embeddings were clustered (`kind`, each part's
    width) and every item's clustered vector (float16), from which a part a new item lacks (its
    interactions) is imputed from its text neighbours."""

    kind: str  # text | collaborative | both | file
    centroids: list[np.ndarray]
    widths: dict[str, int]
    vectors: np.ndarray

    def save(self, folder: Path) -> None:
        arrays = {f"centroids_{n}": c for n, c in enumerate(self.centroids)}
        meta = json.dumps({"kind": self.kind, "widths": self.widths})
        with atomic_path(folder / "codebooks.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, vectors=self.vectors.astype(np.float16), meta=np.array(meta), **arrays)

    @classmethod
    def load(cls, folder: Path) -> Codebooks | None:
        if not (folder / "codebooks.npz").exists():
            return None
        with np.load(folder / "codebooks.npz") as z:
            meta = json.loads(str(z["meta"]))
            levels = len([k for k in z.files if k.startswith("centroids_")])
            centroids = [z[f"centroids_{n}"] for n in range(levels)]
            return cls(meta["kind"], centroids, meta["widths"], z["vectors"])


@dataclass
class ItemIds:
    """`ids[i]` is the identifier text of `items[i]`; `new_tokens` must be added to the tokenizer."""

    scheme: str
    items: list[str]
    ids: list[str]
    new_tokens: list[str] = field(default_factory=list)
    codebooks: Codebooks | None = field(default=None, compare=False, repr=False)  # semantic: places new items

    def __post_init__(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("item ids are not unique")
        self.index = {item: i for i, item in enumerate(self.items)}
        self.id_by_item = dict(zip(self.items, self.ids, strict=True))  # what prompts show for an item

    def id_of(self, item: str) -> str:
        return self.ids[self.index[item]]

    def save(self, folder: Path) -> None:
        with atomic_path(folder / "item_ids.parquet") as tmp:
            pd.DataFrame({"item": self.items, "id": self.ids}).to_parquet(tmp, index=False)
        write_json(folder / "item_ids.json", {"scheme": self.scheme, "new_tokens": self.new_tokens})
        if self.codebooks is not None:
            self.codebooks.save(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ItemIds:
        folder = Path(folder)
        table = pd.read_parquet(folder / "item_ids.parquet")
        meta = read_json(folder / "item_ids.json")
        return cls(meta["scheme"], table["item"].tolist(), table["id"].tolist(), meta["new_tokens"],
                   Codebooks.load(folder))  # fmt: skip


def semantic_tokens(levels: int, codebook_size: int) -> list[str]:
    return [f"<{LEVEL_NAMES[lv]}_{c}>" for lv in range(levels) for c in range(codebook_size)]


def semantic_ids(embeddings: np.ndarray, cfg: IdsConfig) -> tuple[list[str], list[np.ndarray]]:
    """The ids and each level's centroids."""
    codes, stages = residual_kmeans(embeddings, cfg.levels, cfg.codebook_size, seed=cfg.seed)
    codes = resolve_collisions(codes, stages, cfg.codebook_size)
    return [code_text(row) for row in codes], [centers for centers, _ in stages]


def code_text(codes) -> str:
    return "".join(f"<{LEVEL_NAMES[lv]}_{int(c)}>" for lv, c in enumerate(codes))


def code_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in re.findall(r"<[a-z]_(\d+)>", text))


def place_new_items(
    ids: ItemIds, text_vectors: np.ndarray, cfg: IdsConfig, neighbours: int = 10
) -> list[str]:
    """Semantic ids for new items from the run's frozen codebooks: each level's nearest centroid to
    the residual, collisions moved to the nearest free code as at build time (the map stays a
    bijection). With `both`, the collaborative part a new item lacks is the mean of its `neighbours`
    nearest items' (by text). Returns the ids; `ids.codebooks.vectors` grows by the new vectors."""
    books = ids.codebooks
    if books is None:
        raise InputError("this run kept no codebooks (it was prepared before they were saved): "
                         "prepare and train again to add items", field="ids.scheme")  # fmt: skip
    if books.kind not in ("text", "both"):
        raise InputError(
            f"this run's semantic ids were clustered from {books.kind} embeddings only, which a new item "
            "without interactions does not have: use ids.embeddings text or both to add items by their text",
            field="ids.embeddings",
        )
    text = normalise(text_vectors)
    parts = [text]
    if books.kind == "both":
        width = books.widths["text"]
        known = books.vectors.astype(np.float32)
        nearest = np.argsort(-(text @ normalise(known[:, :width]).T), axis=1)[:, :neighbours]
        parts.append(normalise(known[nearest, width:].mean(axis=1)))
    vectors = np.concatenate(parts, axis=1)
    residual = vectors.astype(np.float64)
    codes = np.zeros((len(vectors), len(books.centroids)), dtype=np.int64)
    stages = []
    for level, centers in enumerate(books.centroids):
        # squared distance without the (items x centroids x width) difference tensor
        codes[:, level] = ((centers**2).sum(1)[None] - 2 * residual @ centers.T).argmin(1)
        stages.append((centers, residual.copy()))
        residual = residual - centers[codes[:, level]]
    taken = {code_tuple(i) for i in ids.ids}
    codes = resolve_collisions(codes, stages, cfg.codebook_size, taken=taken)
    books.vectors = np.concatenate([books.vectors, vectors.astype(np.float16)])
    return [code_text(row) for row in codes]


def title_ids(split: SplitData) -> list[str]:
    """Titles, whitespace-normalised; a repeat gets " (2)", " (3)", ...; a missing one is "item <id>"."""
    taken: set[str] = set()
    out = []
    for item, title in zip(split.items["item"], split.items["title"].fillna(""), strict=True):
        base = " ".join(str(title).split()) or f"item {item}"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base} ({n})"
        taken.add(candidate)
        out.append(candidate)
    return out


def numeric_ids(n_items: int, seed: int) -> list[str]:
    """Random distinct integers of equal width: the number says nothing about the item."""
    width = len(str(max(n_items * 10, 100)))
    rng = np.random.default_rng(seed)
    picks = rng.choice(np.arange(10 ** (width - 1), 10**width), size=n_items, replace=False)
    return [str(int(x)) for x in picks]


def choose_embeddings(cfg: IdsConfig, split: SplitData) -> str:
    if cfg.embeddings != "auto":
        return cfg.embeddings
    has_text = (pd.Series(item_texts(split.items)).str.len() > 0).mean() >= 0.5
    return "both" if has_text else "collaborative"


def build_item_ids(cfg: IdsConfig, split: SplitData, text_embedder=None) -> ItemIds:
    """Build the id map. `text_embedder(list[str]) -> np.ndarray` is needed for text embeddings."""
    items = split.items["item"].tolist()
    if cfg.scheme == "title":
        return ItemIds("title", items, title_ids(split))
    if cfg.scheme == "numeric":
        return ItemIds("numeric", items, numeric_ids(len(items), cfg.seed))
    if cfg.scheme == "atomic":
        tokens = [f"<item_{n}>" for n in range(len(items))]
        return ItemIds("atomic", items, tokens, tokens)
    kind = choose_embeddings(cfg, split)
    parts = []
    widths = {}
    if kind in ("text", "both"):
        if text_embedder is None:
            raise InputError("text embeddings need the backbone model", field="ids.embeddings")
        parts.append(normalise(text_embedder(item_texts(split.items))))
        widths["text"] = parts[-1].shape[1]
    if kind in ("collaborative", "both"):
        parts.append(collaborative_embeddings(split, seed=cfg.seed))
        widths["collaborative"] = parts[-1].shape[1]
    if kind == "file":
        parts.append(file_embeddings(cfg.embeddings_file, items))
        widths["file"] = parts[-1].shape[1]
    if len(items) > cfg.codebook_size**cfg.levels:
        raise InputError(
            f"{len(items)} items do not fit {cfg.codebook_size}^{cfg.levels} codes", field="ids.codebook_size"
        )
    vectors = np.concatenate(parts, axis=1)
    ids, centroids = semantic_ids(vectors, cfg)
    books = Codebooks(kind, centroids, widths, vectors)
    return ItemIds("semantic", items, ids, semantic_tokens(cfg.levels, cfg.codebook_size), books)


def id_token_ids(tokenizer, ids: list[str]) -> list[list[int]]:
    """The token sequence of each id as the model generates it (after the prompt's final newline)."""
    return tokenizer(list(ids), add_special_tokens=False).input_ids
