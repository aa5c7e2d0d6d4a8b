"""Item embeddings that semantic ids are clustered from: text (backbone), collaborative (SVD), or a
file of the user's own vectors (e.g. SASRec's item embeddings: LC-Rec's "collaborative semantic ids").

Collaborative embeddings use training interactions only (never a valid/test target), so an item's
id cannot encode where it sits in a held-out sequence; vectors from a file must be made the same way.
"""

from __future__ import annotations

import hashlib
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
from llmrec.io import atomic_path


def item_texts(items: pd.DataFrame) -> list[str]:
    """Each item's text as every text vector embeds it: "title. text" (either part may be empty)."""
    titles = items["title"].fillna("").astype(str)
    texts = items["text"].fillna("").astype(str)
    return [". ".join(p for p in (t, x) if p) for t, x in zip(titles, texts, strict=True)]


def item_text_vectors(
    items: pd.DataFrame, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> np.ndarray:
    """The item text vectors (float32, one row per item of `items`): the base model's embedding of
    each item's "title. text", cached by text per model fingerprint in $LLMREC_CACHE, so a second
    caller embeds only texts it has not seen. The one definition behind semantic ids from text, the
    content baseline and mix, anchored rows (the LLM's and SASRec-CE's) and items added later."""
    from llmrec.backbone import cache_dir

    return text_embeddings(item_texts(items), model, tokenizer, cache_folder=cache_dir())


def model_fingerprint(model: PreTrainedModel, max_tokens: int) -> str:
    """Names one embedding function: the model's name, dtype and a sample of its weights (a local folder
    whose weights change gets a new fingerprint), and the truncation length."""
    digest = hashlib.sha1(f"{model.config._name_or_path}|{model.dtype}|{max_tokens}".encode())
    params = list(model.parameters())  # any architecture: the input rows and a middle weight
    for weight in (model.get_input_embeddings().weight[:8], params[len(params) // 2]):
        digest.update(weight.detach().float().cpu().numpy().tobytes()[:65536])
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Text embeddings kept between `prepare` runs: one Parquet table per model fingerprint
    (`key`: sha1 of the text, `embedding`), under `cache_dir()/text-embeddings/`."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.path = folder / "text-embeddings" / f"{fingerprint}.parquet"
        self.rows: dict[str, np.ndarray] = {}
        if self.path.exists():
            table = pd.read_parquet(self.path)
            self.rows = {
                k: np.asarray(v, dtype=np.float32)
                for k, v in zip(table["key"], table["embedding"], strict=True)
            }

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame({"key": list(self.rows), "embedding": [v.tolist() for v in self.rows.values()]})
        with atomic_path(self.path) as tmp:
            table.to_parquet(tmp, index=False)


@torch.no_grad()
def text_embeddings(
    texts: list[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    max_tokens: int = 64,
    cache_folder: Path | None = None,
) -> np.ndarray:
    """Mean-pooled last hidden states of the backbone, one row per text. Only the decoder runs (the
    output head over the vocabulary would be wasted work); with `cache_folder`, texts this model
    embedded before are read back instead of recomputed."""
    model.eval()
    texts = [t or "unknown item" for t in texts]
    cache = EmbeddingCache(cache_folder, model_fingerprint(model, max_tokens)) if cache_folder else None
    keys = [EmbeddingCache.key(t) for t in texts] if cache else []
    todo = [i for i in range(len(texts)) if not cache or keys[i] not in cache.rows]
    width = model.config.hidden_size
    out = np.zeros((len(texts), width), dtype=np.float32)
    order = sorted(todo, key=lambda i: len(texts[i]))  # similar lengths per batch: less padding
    decoder = model.get_decoder()
    for start in tqdm(range(0, len(order), batch_size), desc="item text embeddings", unit="batch"):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=max_tokens
        ).to(model.device)
        hidden = decoder(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out[idx] = ((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy()
    if cache:
        computed = set(todo)
        for i in range(len(texts)):
            if i in computed:
                cache.rows[keys[i]] = out[i]
            else:
                out[i] = cache.rows[keys[i]]
        if todo:
            cache.save()
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
