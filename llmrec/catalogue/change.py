"""Items join or leave a trained run's catalogue, no retraining (`llmrec items add|remove`).

add: the new items (a table with the run's item columns) join the catalogue. With semantic ids each
new item's text embedding goes through the run's frozen codebooks (`ids.item_ids.place_new_items`):
no token or weight changes, the trie simply holds one more path. With atomic ids each
gets a new token whose embedding row (also its output row: the head is tied) comes from its text.
A run with anchored rows (`model.item_rows: anchored`) applies its trained text map, the function
every training row was made with, minus the id delta a new item has not earned. Otherwise every
item row started as the mean of its title's token rows, so a ridge map from those text rows to the
trained rows, fitted on the items the run was trained with, places a new item where training would
have moved an item with that text. The tokenizer, the rows, the id map, the items table and the
text vectors change as one staged change under the run's writer lock (`RunDir.staged`: a command
killed before it commits leaves the old catalogue, after it the next load finishes it), the
previous catalogue is kept in catalogue-versions/N/, and the files are renamed into place tokens
and rows first, so a server reloading mid-change never reads ids whose tokens are not there yet.

remove: items leave recommendations (`unavailable.json`); the model and the ids are untouched, so
histories may still name them and `add` of the same id is refused (it is still in the catalogue).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from llmrec.backbone import load_model, load_tokenizer, mean_token_rows
from llmrec.data.importers import read_id_list, read_items_table
from llmrec.errors import InputError
from llmrec.ids import ItemIds
from llmrec.ids.embeddings import item_text_vectors
from llmrec.ids.item_ids import place_new_items
from llmrec.io import MARK, atomic_path, write_json
from llmrec.model.anchored import new_item_rows
from llmrec.run_dir import OPTIONAL_COPIES, PREPARED_COPIES, RunDir

RIDGE = 0.1  # times the mean diagonal of X'X: keeps the map stable when few items have text


def with_intercept(x: torch.Tensor) -> torch.Tensor:
    """[x, 1] in float64: the design matrix of the row map."""
    return torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)


def fit_row_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Ridge regression with an intercept: returns W such that with_intercept(x) @ W approximates y."""
    xa = with_intercept(x)
    gram = xa.T @ xa
    penalty = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
    return torch.linalg.solve(gram + penalty, xa.T @ y.double())


def _versions(run: RunDir) -> Path:
    folder = run.path / "catalogue-versions"
    version = 1 + max((int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit()), default=0)
    return folder / str(version)


def _keep_catalogue(run: RunDir, change: dict) -> Path:
    """Copy the catalogue files as they are now into catalogue-versions/N/ (with what changes)."""
    target = _versions(run)
    with atomic_path(target, kind="catalogue-version") as tmp:
        tmp.mkdir()
        names = (*PREPARED_COPIES, *OPTIONAL_COPIES, "added_rows.safetensors", "item_text_vectors.npy",
                 "unavailable.json")  # fmt: skip
        for name in names:
            if (run.path / name).exists():
                shutil.copy2(run.path / name, tmp / name)
        shutil.copytree(run.tokenizer, tmp / "tokenizer")
        write_json(tmp / "change.json", change | {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return target


def add_items(run_dir: str | Path, items_file: str | Path, log: Callable[[str], None] = print) -> dict:
    """Add the items of `items_file` to the run's catalogue; returns a summary."""
    run = RunDir(run_dir)
    cfg = run.load_config()
    items_file = Path(items_file)
    ids = ItemIds.load(run.path)
    if ids.scheme not in ("atomic", "semantic"):
        raise InputError(
            f"this run has {ids.scheme} ids; `llmrec items add` places new items for atomic ids (the "
            "default recipe) and semantic ids",
            path=run.path,
            field="ids.scheme",
        )
    if cfg.data.sources:  # an added item would belong to no domain, so no request could draw it
        raise InputError("`llmrec items add` does not place items in a run over several domains yet: train "
                         "the new items' domain again, or start a run from this one (model.start_from)",
                         path=run.path, field="data.sources")  # fmt: skip
    table = read_items_table(items_file, cfg.data.columns)
    if table.empty:
        raise InputError("no items in the file", path=items_file)
    known = set(ids.items)
    for row in table.itertuples():
        if row.item in known:
            raise InputError(f"item '{row.item}' is already in the catalogue", path=items_file,
                             where=row.where, field="item")  # fmt: skip
        if not (row.title or row.text):
            raise InputError(f"item '{row.item}' has no title or text: its row is made from its text",
                             path=items_file, where=row.where, field="title")  # fmt: skip
    if ids.scheme == "semantic":
        return _add_semantic(run, cfg, ids, table, items_file, log)
    with run.writing("a catalogue change"):
        tokenizer = run.load_tokenizer()
        model = run.load_model(tokenizer, dtype="fp32")
        embed = model.get_input_embeddings()
        token_ids = tokenizer.convert_tokens_to_ids(ids.ids)
        added = load_file(run.added_rows) if run.added_rows.exists() else None
        earlier_adds = set(added["token_ids"].tolist()) if added is not None else set()
        split = run.load_split()
        text_of = split.title_or_text()
        # the map is fitted on the rows training made, not on rows an earlier `add` predicted
        with_text = [(i, t) for i, t in zip(ids.items, token_ids, strict=True)
                     if t not in earlier_adds and text_of.get(i)]  # fmt: skip
        if len(with_text) < 2:
            raise InputError("fewer than 2 trained items have text: no map from text to rows can be fitted",
                             path=run.path, field="items")  # fmt: skip
        base = base_model(cfg)
        if run.anchor is not None:  # anchored rows: the trained text map itself, no fitted guess
            new_rows = anchored_rows(*base, load_file(run.anchor), table)
        else:
            first_new = min(token_ids)
            weight = embed.weight.detach()
            with torch.no_grad():
                x, _ = mean_token_rows(weight, tokenizer, [text_of[i] for i, _ in with_text], first_new)
                y = embed(torch.tensor([t for _, t in with_text])).float()
                row_map = fit_row_map(x, y)
                new_x, _ = mean_token_rows(weight, tokenizer, [r.title or r.text for r in table.itertuples()],
                                           first_new)  # fmt: skip
                new_rows = with_intercept(new_x) @ row_map
        start = 1 + max(int(re.fullmatch(r"<item_(\d+)>", t).group(1)) for t in ids.ids)
        new_tokens = [f"<item_{start + n}>" for n in range(len(table))]
        tokenizer.add_tokens(new_tokens, special_tokens=True)
        new_token_ids = tokenizer.convert_tokens_to_ids(new_tokens)
        rows = {"token_ids": torch.tensor(new_token_ids), "rows": new_rows.float()}
        items = pd.concat([split.items, table[["item", "title", "text"]]], ignore_index=True)
        vectors = catalogue_text_vectors(*base, items)
        if added is not None:
            rows = {k: torch.cat([added[k], rows[k]]) for k in rows}
        version = _keep_catalogue(
            run, {"change": "add", "file": str(items_file), "items": table["item"].tolist()}
        )
        with run.staged(first=("tokenizer", run.added_rows.name)) as stage:
            tokenizer.save_pretrained(stage / "tokenizer")
            (stage / "tokenizer" / MARK).write_text("tokenizer\n")
            save_file({k: v.contiguous() for k, v in rows.items()}, str(stage / run.added_rows.name))
            ItemIds("atomic", [*ids.items, *table["item"]], [*ids.ids, *new_tokens],
                    [*ids.new_tokens, *new_tokens]).save(stage)  # fmt: skip
            items.to_parquet(stage / "items.parquet", index=False)
            with open(stage / run.text_vectors.name, "wb") as f:
                np.save(f, vectors)
    log(f"added {len(table)} items to {run.path} (the catalogue before is in {version})")
    return {"added": len(table), "catalogue": len(items), "previous": str(version)}


def base_model(cfg):
    """The run's base model and tokenizer, as `prepare` and `train` loaded them: what embeds item text."""
    return load_model(cfg.model.name, cfg.model.dtype, layers=cfg.model.layers), load_tokenizer(
        cfg.model.name
    )


def anchored_rows(model, tokenizer, state: dict, table: pd.DataFrame) -> torch.Tensor:
    """The rows of `table`'s items by the run's anchor's text path (model/anchored.py: the map of
    their text, no id delta), from the base model's text vectors and token rows as training computed
    its items' features: an added item's row, or what the text path alone makes of a trained one."""
    pooled = item_text_vectors(table, model, tokenizer)
    texts = [r.title or r.text for r in table.itertuples()]
    token_rows, _ = mean_token_rows(model.get_input_embeddings().weight, tokenizer, texts, len(tokenizer))
    return new_item_rows(state, pooled, token_rows)


def catalogue_text_vectors(model, tokenizer, items: pd.DataFrame) -> np.ndarray:
    """Every item's text embedding by the base model ("title. text", as `prepare` embeds items for
    semantic ids; cached by text, so a later add embeds only its own items): what
    `generate.new_item_slots` compares a user's latest item with the added ones by."""
    return item_text_vectors(items, model, tokenizer).astype(np.float16)


def _add_semantic(run: RunDir, cfg, ids: ItemIds, table: pd.DataFrame, items_file: Path, log) -> dict:
    """Semantic ids: the new items' text embeddings (the base model, as `prepare` made them) go
    through the frozen codebooks; tokens, rows and model stay as they are, the trie grows."""
    if ids.codebooks is not None and ids.codebooks.kind in ("text", "both"):
        base = base_model(cfg)
        text = catalogue_text_vectors(*base, table).astype(np.float32)
    else:
        text = np.zeros((len(table), 1), dtype=np.float32)  # place_new_items says why it cannot place
    with run.writing("a catalogue change"):
        new_ids = place_new_items(ids, text, cfg.ids)
        split = run.load_split()
        version = _keep_catalogue(
            run, {"change": "add", "file": str(items_file), "items": table["item"].tolist()}
        )
        items = pd.concat([split.items, table[["item", "title", "text"]]], ignore_index=True)
        with run.staged() as stage:
            ItemIds("semantic", [*ids.items, *table["item"]], [*ids.ids, *new_ids], ids.new_tokens,
                    ids.codebooks).save(stage)  # fmt: skip
            items.to_parquet(stage / "items.parquet", index=False)
    log(f"added {len(table)} items to {run.path} (the catalogue before is in {version})")
    return {"added": len(table), "catalogue": len(items), "previous": str(version)}


def remove_items(run_dir: str | Path, ids_file: str | Path, log: Callable[[str], None] = print) -> dict:
    """Take the items of `ids_file` out of recommendations (they stay in the catalogue)."""
    run = RunDir(run_dir)
    run.load_config()
    ids_file = Path(ids_file)
    wanted = read_id_list(ids_file, "item")
    if not wanted:
        raise InputError("no item ids in the file", path=ids_file)
    catalogue = set(ItemIds.load(run.path).items)
    for n, item in enumerate(wanted, start=1):
        if item not in catalogue:
            raise InputError(f"item '{item}' is not in the catalogue", path=ids_file, where=f"entry {n}",
                             field="item")  # fmt: skip
    with run.writing("a catalogue change"):
        before = run.load_unavailable()
        now = sorted(before | set(wanted))
        if len(now) >= len(catalogue):
            raise InputError("this would leave no item to recommend", path=ids_file, field="item")
        version = _keep_catalogue(run, {"change": "remove", "file": str(ids_file), "items": wanted})
        write_json(run.unavailable, {"items": now})
    log(f"{len(now) - len(before)} items taken out of recommendations ({len(now)} in all; before: {version})")
    return {"removed": len(now) - len(before), "unavailable": len(now), "previous": str(version)}
