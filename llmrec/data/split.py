"""Chronological leave-one-out split and the prepared-data tables that later stages read.

Rules (documented in docs/data.md):
- Each user's interactions are sorted by timestamp; ties keep file order (a stable sort on the
  line/record number), so the split is deterministic.
- Repeated (user, item) interactions are kept (re-consumption is signal) unless `dedupe: true`,
  which keeps only the first occurrence.
- Users with at least `min_interactions` (>= 3) items: the last item is the test target, the one
  before it the validation target, the rest is training history. Shorter users contribute their
  whole sequence to training (examples, popularity, collaborative embeddings) and are not evaluated.
- When the timestamps are times (`Catalog.seconds_per_unit`), each item's time in seconds is kept
  beside it (`train_t`, `valid_t`, `test_t`); data with an order only has no such columns.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmrec.data.importers import Catalog
from llmrec.errors import InputError
from llmrec.io import atomic_path


def unknown_domain(
    domain: object, names: list[str], field: str = "domain", where: str | None = None
) -> InputError:
    """The error for a request naming a domain the run was not trained on (the server, the CLI and
    the generation API all say it the same way)."""
    return InputError(
        f"unknown domain {domain!r}: this run's domains are {', '.join(names)}", where=where, field=field
    )


@dataclass
class SplitData:
    """Items and per-user train/valid/test sequences."""

    items: pd.DataFrame  # item, title, text
    # user, train (list[str]), valid (str|None), test (str|None); with times also train_t, valid_t, test_t
    users: pd.DataFrame

    @property
    def timed(self) -> bool:
        """Whether each interaction's time (seconds) is known, not only its order."""
        return "train_t" in self.users.columns

    def history(self, row: pd.Series | dict, split: str) -> list[str]:
        """The history the model sees when predicting `split`'s target for this user."""
        if split == "valid":
            return list(row["train"])
        if split == "test":
            return [*row["train"], row["valid"]]
        raise ValueError(f"unknown split {split!r}")

    def histories(self, users: pd.DataFrame, split: str) -> list[list[str]]:
        """`history(row, split)` for every row of `users` (e.g. `eval_users(split)` or a sample of it)."""
        return [self.history(row, split) for _, row in users.iterrows()]

    def history_times(self, row: pd.Series | dict, split: str) -> list[float] | None:
        """The times (seconds) of `history(row, split)`'s items; None for data without times."""
        if not self.timed:
            return None
        if split == "valid":
            return list(row["train_t"])
        if split == "test":
            return [*row["train_t"], row["valid_t"]]
        raise ValueError(f"unknown split {split!r}")

    def times(self, users: pd.DataFrame, split: str) -> list[list[float]] | None:
        """`history_times(row, split)` for every row of `users`; None for data without times."""
        return [self.history_times(row, split) for _, row in users.iterrows()] if self.timed else None

    def full_history(self, row: pd.Series | dict) -> list[str]:
        """Everything known about the user of `row`, oldest first: train + valid + test items (what
        `recommend --user`, `score --users` and the server use)."""
        return [*row["train"], *(x for x in (row["valid"], row["test"]) if isinstance(x, str))]

    def full_times(self, row: pd.Series | dict) -> list[float] | None:
        """The times of `full_history(row)`'s items; None for data without times."""
        if not self.timed:
            return None
        evaluated = isinstance(row["test"], str)
        return [*row["train_t"], *((row["valid_t"], row["test_t"]) if evaluated else ())]

    def user_history(self, user: str) -> tuple[list[str], list[float] | None]:
        """A known user's full history and its times; an unknown user is an InputError."""
        rows = self.users[self.users["user"] == str(user)]
        if rows.empty:
            raise InputError(f"unknown user '{user}'", field="user")
        return self.full_history(rows.iloc[0]), self.full_times(rows.iloc[0])

    def eval_users(self, split: str) -> pd.DataFrame:
        return self.users[self.users[split].notna()].reset_index(drop=True)

    def eval_sample(self, split: str, n: int, seed: int) -> pd.DataFrame:
        """A seeded sample of `n` of `eval_users(split)` (all, shuffled, if fewer): the users that
        training validates on and that `generate.mix: auto` compares on."""
        users = self.eval_users(split)
        return users.sample(n=min(n, len(users)), random_state=seed)

    @property
    def domains(self) -> list[str] | None:
        """The domain names of a run over several domains (`data.sources`), in source order; None
        for one source."""
        return None if "domain" not in self.items.columns else list(dict.fromkeys(self.items["domain"]))

    def item_domains(self) -> dict[str, str] | None:
        """Each item's domain; None for one source."""
        if self.domains is None:
            return None
        return dict(zip(self.items["item"], self.items["domain"], strict=True))

    def user_domains(self, users: pd.DataFrame) -> list[str] | None:
        """The domain of every row of `users` (a sample of `self.users`): what each one's
        recommendations are drawn from; None for one source."""
        return None if self.domains is None else users["domain"].tolist()

    def user_domain(self, user: str) -> str | None:
        """A known user's domain; None for one source."""
        if self.domains is None:
            return None
        rows = self.users[self.users["user"] == str(user)]
        return None if rows.empty else str(rows.iloc[0]["domain"])

    def check_domain(self, domain: str | None, field: str = "domain") -> None:
        """A domain named by a request: one of the run's (an error for a run over one source)."""
        if domain is None:
            return
        if self.domains is None:
            raise InputError(f"this run was trained on one data source, without domains: leave {field} out",
                             field=field)  # fmt: skip
        if domain not in self.domains:
            raise unknown_domain(domain, self.domains, field=field)

    def domain_catalogues(self) -> dict[str, set[str]]:
        """Each domain's items (a run over several domains); {} for one source."""
        if self.domains is None:
            return {}
        return {str(d): set(group) for d, group in self.items.groupby("domain", sort=False)["item"]}

    def titles(self) -> dict[str, str]:
        return dict(zip(self.items["item"], self.items["title"].fillna(""), strict=True))

    def title_or_text(self) -> dict[str, str]:
        """Each item's title, or its extra text when it has none ("" when it has neither): what an
        atomic item's embedding row starts from."""
        titles, texts = self.items["title"].fillna(""), self.items["text"].fillna("")
        return {i: t or x for i, t, x in zip(self.items["item"], titles, texts, strict=True)}

    def training_interactions(self) -> pd.DataFrame:
        """Every training position as (item, timestamp): its time in seconds where times are known,
        else its place in the user's training sequence (data with an order only)."""
        items = self.users["train"].explode().dropna()
        if self.timed:
            stamps = self.users["train_t"].explode().dropna().astype(float)
        else:
            stamps = items.groupby(level=0).cumcount().astype(float)
        return pd.DataFrame({"item": items.to_numpy(), "timestamp": stamps.to_numpy()})

    def fingerprint(self) -> str:
        """A content hash of what a sequential model learns from: the catalogue's items in order and
        every user's train/valid/test items (not titles, text or times)."""
        h = hashlib.sha256(json.dumps(self.items["item"].tolist()).encode())
        for row in self.users[["user", "train", "valid", "test"]].itertuples(index=False):
            h.update(json.dumps([row.user, list(row.train), row.valid, row.test]).encode())
        return h.hexdigest()[:16]

    def save(self, folder: Path) -> None:
        for name, frame in (("items", self.items), ("users", self.users)):
            with atomic_path(folder / f"{name}.parquet") as tmp:
                pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)

    @classmethod
    def load(cls, folder: str | Path) -> SplitData:
        folder = Path(folder)
        if not (folder / "users.parquet").exists():
            raise InputError(
                "not a prepared folder (no users.parquet): run `llmrec prepare` first", path=folder
            )
        if not (folder / "items.parquet").exists():
            raise InputError("missing (every prepared folder and run has one): restore it, or prepare again",
                             path=folder / "items.parquet")  # fmt: skip
        users = pd.read_parquet(folder / "users.parquet")
        users["train"] = users["train"].map(list)
        if "train_t" in users.columns:
            users["train_t"] = users["train_t"].map(list)
        return cls(items=pd.read_parquet(folder / "items.parquet"), users=users)


def leave_one_out(catalog: Catalog, *, dedupe: bool = False, min_interactions: int = 3) -> SplitData:
    inter = catalog.interactions.sort_values(["user", "timestamp", "row"], kind="stable")
    if dedupe:
        inter = inter.drop_duplicates(["user", "item"], keep="first")
    grouped = inter.groupby("user", sort=False)
    seqs = grouped["item"].agg(list)
    records = []
    for user, seq in seqs.items():
        if len(seq) >= min_interactions:
            records.append((user, seq[:-2], seq[-2], seq[-1]))
        else:
            records.append((user, seq, None, None))
    users = pd.DataFrame.from_records(records, columns=["user", "train", "valid", "test"])
    if "domain" in inter.columns:  # several domains (`merge_domains`): each user is one domain's
        users["domain"] = grouped["domain"].first().reindex(users["user"]).to_numpy()
    if catalog.seconds_per_unit is not None:
        stamps = grouped["timestamp"].agg(list)
        seconds = [[t * catalog.seconds_per_unit for t in stamps[user]] for user in users["user"]]
        evaluated = users["test"].notna().to_numpy()
        users["train_t"] = [s[:-2] if e else s for s, e in zip(seconds, evaluated, strict=True)]
        users["valid_t"] = [s[-2] if e else None for s, e in zip(seconds, evaluated, strict=True)]
        users["test_t"] = [s[-1] if e else None for s, e in zip(seconds, evaluated, strict=True)]
    if users["test"].notna().sum() == 0:
        raise InputError(
            f"no user has at least {min_interactions} interactions, so nothing can be evaluated",
            path=catalog.source,
        )
    return SplitData(items=catalog.items.reset_index(drop=True), users=users)


def newest_items(interactions: pd.DataFrame, share: float) -> list[str]:
    """The `share` of `interactions`' items (rounded up) first seen last: by earliest timestamp, ties by
    mean timestamp, then id. The cold-start benchmark's held-out items and `model.anchor.withhold_newest`."""
    if share <= 0:
        return []
    stats = interactions.groupby("item")["timestamp"].agg(["min", "mean"])
    stats = stats.reset_index().sort_values(["min", "mean", "item"], ascending=[False, False, True])
    return stats["item"].head(math.ceil(share * len(stats))).tolist()


def item_domain_array(items: pd.DataFrame) -> np.ndarray | None:
    """Per row of an item table its domain (a run over several, `data.sources`); None for one source."""
    return items["domain"].to_numpy().astype(str) if "domain" in items.columns else None


def outside_domains(item_domain: np.ndarray | None, domains: list[str] | None) -> np.ndarray | None:
    """(requests, items) True where an item (of `item_domain_array`) is outside the request's domain;
    None when nothing is restricted (one source, or no domains asked for)."""
    if item_domain is None or domains is None:
        return None
    return item_domain[None, :] != np.asarray(domains, dtype=str)[:, None]


def item_has_text(items: pd.DataFrame) -> np.ndarray:
    """Per row of an item table: whether it has a title or text (what a text embedding can describe)."""
    title = items["title"].fillna("").astype(str).str.strip() != ""
    text = items["text"].fillna("").astype(str).str.strip() != ""
    return np.array(title | text, dtype=bool)  # a writable copy (torch.from_numpy warns on a view)
