"""Offline batch scoring: top-K for many users into Parquet/JSONL, in atomic shards, resumable.

Layout next to the output file `OUT`:

    OUT.parts/manifest.json     what is being scored (run, users, k) and which shards are done
    OUT.parts/shard-00000.parquet ...
    OUT.errors.jsonl            users that could not be scored (unknown user / history item)

A shard is written to a temporary file and renamed, then recorded in the manifest (also atomic),
so after `kill -9` a rerun skips exactly the finished shards: no user is lost or scored twice.
When every shard is done they are concatenated into `OUT` (again via a temporary file).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from llmrec.errors import InputError
from llmrec.generate import Recommendation
from llmrec.io import atomic_path, read_json, write_json

SCHEMA = pa.schema(
    [
        ("user", pa.string()),
        ("rank", pa.int32()),
        ("item", pa.string()),
        ("title", pa.string()),
        ("score", pa.float64()),
    ]
)
# an explanation's evidence (`Explainer.attach`): a history item, its co-occurrence with the
# recommended item (cosine, users who chose both), the attributes both have, and the model's rank of
# the recommended item without it (null unless it is the item the model leaned on)
EVIDENCE = pa.list_(
    pa.struct(
        [
            ("item", pa.string()),
            ("title", pa.string()),
            ("relation", pa.float64()),
            ("together", pa.int64()),
            ("shared", pa.list_(pa.string())),
            ("rank_without", pa.int64()),
        ]
    )
)
EXPLAINED_SCHEMA = SCHEMA.append(pa.field("reason", pa.string())).append(pa.field("evidence", EVIDENCE))


@dataclass
class ScoreRequest:
    """One user to score: their id and history (None when the user could not be resolved), the
    history's times (seconds; None for data without times) and, in a run over several domains, the
    domain to recommend from."""

    user: str
    history: list[str] | None
    times: list[float] | None = None
    error: str | None = None
    domain: str | None = None


def to_rows(users: list[str], lists: list[list[Recommendation]], explained: bool = False) -> list[dict]:
    """One output row (SCHEMA, or EXPLAINED_SCHEMA with reason and evidence) per (user, rank)."""
    rows = []
    for user, recs in zip(users, lists, strict=True):
        for rec in recs:
            row = {"user": user, "rank": rec.rank, "item": rec.item, "title": rec.title, "score": rec.score}
            if explained:
                row |= {"reason": rec.reason, "evidence": rec.evidence}
            rows.append(row)
    return rows


def _fingerprint(requests: list[ScoreRequest], settings: dict) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for r in requests:
        h.update(r.user.encode() + b"\0")
    return h.hexdigest()[:16]


def score_users(
    requests: list[ScoreRequest],
    recommend: Callable[
        [list[list[str]], list[list[float] | None] | None, list[str] | None], list[list[Recommendation]]
    ],
    out: str | Path,
    *,
    shard_size: int,
    settings: dict,
    strict: bool = False,
    check_history: Callable[[list[str]], None] | None = None,
    explained: bool = False,
) -> dict:
    """Score `requests` in shards of `shard_size` users with `recommend(histories, times, domains)`
    (times None when no request has any, domains when none names one); resumable."""
    out = Path(out)
    schema = EXPLAINED_SCHEMA if explained else SCHEMA
    if out.suffix not in (".parquet", ".jsonl"):
        raise InputError("output must end in .parquet or .jsonl", path=out)
    if shard_size < 1:
        raise InputError(f"shard size must be >= 1 (got {shard_size})", field="shard_size")
    parts = out.with_name(out.name + ".parts")
    errors_path = out.with_name(out.name + ".errors.jsonl")
    fingerprint = _fingerprint(requests, settings)
    manifest_path = parts / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else None
    if manifest and manifest["fingerprint"] != fingerprint:
        raise InputError(
            "an unfinished run with other users or settings is in the way; delete it or use another --out",
            path=parts,
        )
    n_shards = (len(requests) + shard_size - 1) // shard_size
    if manifest is None:
        parts.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": fingerprint, "settings": settings, "users": len(requests),
                    "shard_size": shard_size, "shards": n_shards, "done": {}}  # fmt: skip
        write_json(manifest_path, manifest)

    done_users = sum(v["users"] for v in manifest["done"].values())
    bar = tqdm(total=len(requests), initial=done_users, desc="scoring", unit="user", smoothing=0.1)
    t0 = time.time()
    for shard in range(n_shards):
        name = f"shard-{shard:05d}.parquet"
        if name in manifest["done"]:
            continue
        batch = requests[shard * shard_size : (shard + 1) * shard_size]
        good, failed = [], []
        for r in batch:
            error = r.error
            if error is None and check_history is not None:
                try:
                    check_history(r.history or [])
                except InputError as exc:
                    error = exc.reason
            if error is not None:
                if strict:
                    raise InputError(error, where=f"user {r.user}")
                failed.append({"user": r.user, "error": error})
            else:
                good.append(r)
        times = [r.times for r in good] if any(r.times is not None for r in good) else None
        domains = [r.domain for r in good] if any(r.domain is not None for r in good) else None
        lists = recommend([r.history for r in good], times, domains) if good else []
        rows = to_rows([r.user for r in good], lists, explained)
        with atomic_path(parts / name) as tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        manifest["done"][name] = {"users": len(batch), "rows": len(rows), "errors": failed}
        write_json(manifest_path, manifest)
        bar.update(len(batch))
    bar.close()

    shards = [parts / f"shard-{i:05d}.parquet" for i in range(n_shards)]
    table = pa.concat_tables([pq.read_table(p) for p in shards]) if shards else schema.empty_table()
    with atomic_path(out) as tmp:
        if out.suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            with tmp.open("w") as f:
                for row in table.to_pylist():
                    f.write(json.dumps(row) + "\n")
    errors = [e for i in range(n_shards) for e in manifest["done"][f"shard-{i:05d}.parquet"]["errors"]]
    with atomic_path(errors_path) as tmp:
        tmp.write_text("".join(json.dumps(e) + "\n" for e in errors))
    return {"users": len(requests), "rows": table.num_rows, "errors": len(errors),
            "wall_s": round(time.time() - t0, 1), "out": str(out)}  # fmt: skip
