"""Train-time assembly of the model's optional parts from the run's data, before the loop starts:
time-gap rows (`prompts.time: gaps`), the item anchor (`model.item_rows: anchored`), and the content
hash a run pins of its prepared folder. `recipes.train` wires them; each says in the log why an
option it was asked for does not apply."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from llmrec.config import Config
from llmrec.data import SplitData, newest_items
from llmrec.ids import ItemIds
from llmrec.ids.embeddings import item_text_vectors
from llmrec.model.anchored import ItemAnchor, build_anchor
from llmrec.prompts import examples_path
from llmrec.run_dir import PREPARED_COPIES


def time_gap_rows(cfg: Config, split: SplitData, log: Callable[[str], None] = print) -> bool:
    """Whether the model learns time-gap embeddings: `prompts.time: gaps` on item lists of data with
    times (next_item prompts carry the gaps as words; data without times has none, said why)."""
    if cfg.prompts.time != "gaps":
        return False
    if not split.timed:
        log("prompts.time: gaps, but the data has no times (only an order): training without them")
        return False
    if cfg.prompts.objective != "every_item":
        log("prompts.time: gaps: the gaps are words in the next_item prompts")
        return False
    log("prompts.time: gaps: each listed item carries its time gaps as learned embeddings")
    return True


def item_anchor(
    cfg: Config, model, tokenizer, ids: ItemIds, split: SplitData, log: Callable[[str], None] = print
) -> ItemAnchor | None:
    """model.item_rows: anchored, atomic ids, a catalogue with text: the anchor of the item rows
    (model/anchored.py), from the base model before any adapter; else None (free rows, said why)."""
    if cfg.model.item_rows != "anchored":
        return None
    if ids.scheme != "atomic":
        log(f"model.item_rows: anchored applies to atomic ids; {ids.scheme} ids train as configured")
        return None
    text = split.title_or_text()
    texts = [text.get(i, "") for i in ids.items]
    anchor = None
    if any(texts):  # else the pooled vectors would be embedded for nothing
        order = {item: n for n, item in enumerate(split.items["item"])}
        pooled_all = item_text_vectors(split.items, model, tokenizer)  # the base model: no adapter yet
        pooled = pooled_all[[order[i] for i in ids.items]]
        token_ids = tokenizer.convert_tokens_to_ids(ids.ids)
        share = cfg.model.anchor.withhold_newest
        # only when asked: the training interactions are every user's history, rebuilt
        newest = set(newest_items(split.training_interactions(), share)) if share else set()
        withheld = [item in newest for item in ids.items]
        anchor = build_anchor(model, tokenizer, token_ids, texts, pooled, cfg.model.anchor, cfg.train.seed,
                              withheld)  # fmt: skip
    if anchor is None:
        log("model.item_rows: anchored, but no item has a title or text: training free item rows")
        return None
    with_text = int(anchor.has_text.sum())
    bound = cfg.model.anchor.delta_bound
    log(f"anchored item rows: {with_text} of {len(ids.items)} items anchored to their text "
                f"(delta within {bound:g} of a row's norm), the rest free")  # fmt: skip
    if anchor.withheld.any():
        log(f"model.anchor.withhold_newest: the newest {int(anchor.withheld.sum())} items with text "
                    "keep no delta (ranked by their text alone, as added items are)")  # fmt: skip
    return anchor


def prepared_fingerprint(prepared: Path) -> str:
    """A content hash of what training reads from a prepared folder."""
    h = hashlib.sha256()
    for name in PREPARED_COPIES:
        h.update(name.encode() + b"\0" + (prepared / name).read_bytes())
    examples = examples_path(prepared, "train")
    files = sorted(examples.rglob("*")) if examples.is_dir() else [examples]
    for path in (p for p in files if p.is_file() and not p.name.startswith("cache-")):
        h.update(str(path.relative_to(prepared)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
