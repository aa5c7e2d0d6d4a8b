"""Batch scoring across machines: a Ray Data pipeline of recommender actors (optional extra `ray`).

    users (Parquet/CSV/JSONL with `user`, `history` [, `times`, `domain`])
    ->  map_batches(ScoringActor, N actors)  ->  write_parquet(OUT_DIR)

Ray Data schedules the actors over the cluster (one GPU each for the vLLM backend), streams
batches through them and retries failed tasks; each actor holds the run's recommender as
`llmrec.load` gives it (the default chosen on validation, or `mix`; one vLLM engine each), so
its top-K are `llmrec score`'s.
Within one machine, prefer `llmrec score` (resumable shards, errors file); use this when one
machine is not enough.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.config import mix_name
from llmrec.mix import load_recommender
from llmrec.score.batch import SCHEMA, to_rows


class ScoringActor:
    """Ray Data callable class: a batch of users with histories -> their top-K rows."""

    def __init__(self, run_dir: str, k: int, backend: str | None = None, mix: str | None = None) -> None:
        # log=print: an actor's log goes to the Ray worker's output
        self.recommender = load_recommender(run_dir, backend, mix, log=print)
        self.k = k

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        histories = [[str(i) for i in h] for h in batch["history"]]
        times = (
            [None if t is None else [float(x) for x in t] for t in batch["times"]]
            if "times" in batch
            else None
        )
        domains = [str(d) for d in batch["domain"]] if "domain" in batch else None
        lists = self.recommender.recommend(histories, k=self.k, times=times, domains=domains)
        rows = to_rows([str(u) for u in batch["user"]], lists)
        return pd.DataFrame(rows, columns=SCHEMA.names)


def score_with_ray(
    run_dir: str | Path,
    users: pd.DataFrame,
    out_dir: str | Path,
    *,
    k: int = 10,
    backend: str | None = None,
    mix: str | None = None,
    retriever: str | None = None,
    actors: int = 1,
    gpus_per_actor: float = 0,
    batch_size: int = 256,
) -> None:
    """Score `users` (columns `user`, `history`: item ids oldest first, and optionally `times`: their
    unix times, and `domain` in a run over several domains) into Parquet files in `out_dir`, with
    the run's recommender (`llmrec.load`: its chosen default, or `mix`; `retriever` is its old name,
    deprecated)."""
    import ray

    mix = mix_name(mix, retriever)
    columns = [c for c in ("user", "history", "times", "domain") if c in users.columns]
    dataset = ray.data.from_pandas(users[columns])
    scored = dataset.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "run_dir": str(Path(run_dir).resolve()),
            "k": k,
            "backend": backend,
            "mix": mix,
        },
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=actors,
        num_gpus=gpus_per_actor,
    )
    scored.write_parquet(str(out_dir))
