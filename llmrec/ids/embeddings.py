"""Item embeddings that semantic ids are clustered from: text (backbone), collaborative (SVD), or a
file of the user's own vectors (e.g. SASRec's item embeddings: LC-Rec's "collaborative semantic ids").

Collaborative embeddings use training interactions only (never a valid/test target), so an item's
id cannot encode where it sits in a held-out sequence; vectors from a file must be made the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.sparse import csr_matrix
from sklearn.decomposition import TruncatedSVD
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.data import SplitData
from llmrec.data.importers import read_table, require_columns
from llmrec.errors import InputError


def item_texts(split: SplitData) -> list[str]:
    titles = split.items["title"].fillna("").astype(str)
    texts = split.items["text"].fillna("").astype(str)
    return [". ".join(p for p in (t, x) if p) for t, x in zip(titles, texts, strict=True)]


@torch.no_grad()
def text_embeddings(
    texts: list[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    max_tokens: int = 64,
) -> np.ndarray:
    """Mean-pooled last hidden states of the backbone, one row per text."""
    model.eval()
    rows = []
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    for start in tqdm(range(0, len(texts), batch_size), desc="item text embeddings", unit="batch"):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] or "unknown item" for i in idx],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_tokens,
        ).to(model.device)
        hidden = model(**batch, output_hidden_states=True).hidden_states[-1].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        rows.append(((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy())
    out = np.zeros((len(texts), rows[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(rows)
    return out


def collaborative_embeddings(split: SplitData, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Truncated SVD of the item x user matrix of training interactions (rows L2-normalised).
    Items never seen in training get a zero row."""
    index = {item: i for i, item in enumerate(split.items["item"])}
    rows, cols = [], []
    for u, seq in enumerate(split.users["train"]):
        for item in set(seq):
            rows.append(index[item])
            cols.append(u)
    matrix = csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(index), len(split.users))
    )
    dim = max(1, min(dim, min(matrix.shape) - 1))
    emb = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(matrix)
    return normalise(emb)


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32)


def file_embeddings(path: str | Path, items: list[str]) -> np.ndarray:
    """Rows of a Parquet/JSONL table (`item`, `embedding`: a list of numbers), in catalogue order.

    Every catalogue item needs a row; rows for other items are ignored (a table may cover more)."""
    path = Path(path)
    frame, unit = read_table(path)  # the importers' reader: same errors, rows numbered as in the file
    require_columns(frame, path, {"item": "item", "embedding": "embedding"})
    frame["item"] = frame["item"].astype(str)
    where = [f"{unit} {n}" for n in frame["__row__"]]
    duplicated = frame["item"].duplicated()
    if duplicated.any():
        raise InputError(
            "item appears twice", path=path, where=where[duplicated.to_numpy().argmax()], field="item"
        )
    row_of = {item: n for n, item in enumerate(frame["item"])}
    missing = [item for item in items if item not in row_of]
    if missing:
        raise InputError(
            f"{len(missing)} catalogue items have no embedding, e.g. {missing[:3]}", path=path, field="item"
        )
    vectors = []
    for n, value in enumerate(frame["embedding"]):
        try:
            vectors.append(np.asarray(value, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"not a list of numbers: {exc}", path=path, where=where[n], field="embedding"
            ) from exc
    width = pd.Series([v.size for v in vectors]).mode()[0]  # the odd row out is the one to name
    for n, vector in enumerate(vectors):
        if vector.ndim != 1 or vector.size != width or not np.isfinite(vector).all():
            raise InputError(
                f"expected a list of {width} finite numbers like the other rows, got shape {vector.shape}",
                path=path,
                where=where[n],
                field="embedding",
            )
    return normalise(np.stack([vectors[row_of[item]] for item in items]))
