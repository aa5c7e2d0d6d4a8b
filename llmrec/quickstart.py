"""`llmrec quickstart`: the whole path on the shipped MovieLens-100K, as a user's run takes it:
prepare, fine-tune (and SASRec-CE for the validation choice, as `train` does), evaluate the run's
chosen default beside the LLM alone, SASRec-CE and popularity, and three users' top-5 with reasons."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import llmrec
from llmrec import recipes
from llmrec.config import builtin_config, load_config
from llmrec.data import SplitData
from llmrec.report import BASELINE_LABELS, MIX_LABELS


def run(config: Path | None = None, eval_users: int = 200, steps: int | None = None) -> dict:
    t0 = time.time()
    cfg = load_config(config or builtin_config("quickstart"))
    if config is None:  # the built-in config's relative paths mean "here", not the package folder
        here = Path.cwd() / "runs" / "quickstart"  # absolute: the run's config works from any folder
        cfg.prepared_dir, cfg.run_dir, cfg.baselines_dir = (
            str(here / n) for n in ("prepared", "run", "baselines")
        )
    if steps is not None:
        cfg.train.max_steps = steps
    recipes.prepare(cfg)
    run_dir = recipes.train(cfg)
    rec = llmrec.load(run_dir.path)  # what `llmrec recommend / score / serve` use: the chosen default
    metrics = recipes.evaluate(run_dir.path, "test", limit=eval_users, recommender=rec)

    split = SplitData.load(cfg.prepared_dir)
    titles = split.titles()
    console = Console()
    explainer = recipes.explainer(run_dir, rec, split)
    for user in recipes.sample_users(split, 3, seed=1):
        history, times = split.user_history(user)
        table = Table(title=f"user {user}: last watched {titles.get(history[-1], history[-1])!r}")
        table.add_column("rank")
        table.add_column("title")
        table.add_column("log-prob", justify="right")
        table.add_column("why (grounded in the user's history)")
        recs = rec.recommend([history], k=5, times=None if times is None else [times])
        for r in explainer.attach([history], recs)[0]:
            table.add_row(str(r.rank), r.title, f"{r.score:.2f}", r.reason)
        console.print(table)
    chosen = MIX_LABELS[metrics["mix"]["model"]]
    labels = BASELINE_LABELS
    others = ", ".join(f"{labels.get(n, n)} {b['ndcg@10']:.4f}" for n, b in metrics["baselines"].items())
    console.print(
        f"NDCG@10 of the run's default ({chosen}, chosen on validation) {metrics['ndcg@10']:.4f}; {others}; "
        f"{metrics['users']} test users, total {time.time() - t0:.0f}s. Run directory: {run_dir.path}"
    )
    return metrics
