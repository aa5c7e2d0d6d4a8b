"""The `llmrec` command line: quickstart, prepare, train, evaluate, recommend, score, baseline.

Heavy libraries (torch, transformers) are imported inside the commands, so `llmrec --help` and
`--version` answer at once."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrec.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Generative recommendation with LLMs.")
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def reported() -> Iterator[None]:
    """Bad input ends the command with its message and exit status 2, not a traceback. A file the
    system refuses (permissions, a full disk) is reported the same way, naming the file."""
    try:
        yield
    except InputError as exc:
        _fail(exc)
    except OSError as exc:
        if exc.filename is None:
            raise
        _fail(InputError(exc.strerror or str(exc), path=exc.filename))


def _version(value: bool) -> None:
    if value:
        from llmrec import __version__

        typer.echo(f"llmrec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Generative recommendation with LLMs."""


Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="change a setting for this command, e.g. --set ids.scheme=title (repeatable; value is YAML)",
    ),
]


def _load(config: Path, overrides: list[str] | None = None):
    from llmrec.config import load_config

    return load_config(config, overrides or ())


@app.command()
def prepare(config: Path, overrides: Overrides = None) -> None:
    """Import -> split -> item ids -> prompt datasets, into the config's prepared_dir."""
    with reported():
        cfg = _load(config, overrides)  # before the heavy imports: a config mistake is reported at once
        from llmrec import recipes

        recipes.prepare(cfg)


@app.command()
def train(config: Path, overrides: Overrides = None) -> None:
    """LoRA fine-tune into the config's run_dir (resumes if a checkpoint is there)."""
    from llmrec import recipes
    from llmrec.train.processes import cpu_processes_requested, relaunch_with_torchrun

    if (processes := cpu_processes_requested()) > 1:
        raise typer.Exit(relaunch_with_torchrun(processes))
    with reported():
        recipes.train(_load(config, overrides))


Explain = Annotated[
    bool, typer.Option("--explain", help="add a reason grounded in the user's history to each item")
]
Backend = Annotated[
    str | None, typer.Option(help="hf (transformers) or vllm; default: the run's generate.backend")
]
Domain = Annotated[
    str | None,
    typer.Option(help="a run over several domains: the one to recommend from (default: a known user's own)"),
]


def _mix_option(value: str | None) -> str | None:
    if value is not None and "--retriever" in sys.argv:
        print("llmrec: --retriever is now --mix", file=sys.stderr)
    from llmrec.config import mix_name

    return mix_name(value)


MixName = Annotated[
    str | None,
    typer.Option(
        "--mix",
        "--retriever",  # the old name, kept working
        help="none (the LLM ranks the catalogue), hybrid (SASRec-CE shortlists, the LLM scores) or content "
        "(the LLM's scores + the item text's similarity to the history; atomic ids), each fitted once per "
        "run; default: the run's generate.mix",
        callback=_mix_option,
    ),
]


@app.command()
def evaluate(
    run_dir: Path,
    split: Annotated[str, typer.Option(help="valid or test")] = "test",
    limit: Annotated[int | None, typer.Option(help="evaluate a seeded sample of N users")] = None,
    backend: Backend = None,
    mix: MixName = None,
    compare: Annotated[
        bool, typer.Option(help="also SASRec-CE (when the run has one) and, for a mix, the LLM alone")
    ] = True,
) -> None:
    """Full-ranking HR/NDCG/MRR of the run's recommender (its chosen default) beside popularity,
    SASRec-CE and the LLM alone; writes RUN_DIR/metrics-<split>.json."""
    from llmrec import recipes

    with reported():
        recipes.evaluate(run_dir, split, limit, backend=backend, mix=mix, compare=compare)


@app.command()
def recommend(
    run_dir: Path,
    user: Annotated[str | None, typer.Option(help="a user id from the prepared data")] = None,
    history: Annotated[
        str | None,
        typer.Option(
            help='comma-separated item ids, oldest first: "i1,i2,..."; with times (unix seconds '
            'or ISO-8601 dates) "i1@881250949,i2@881251000"'
        ),  # fmt: skip
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            help="the request's time (unix seconds or ISO-8601); default: the last item's time "
            "plus the user's median gap"
        ),  # fmt: skip
    ] = None,
    k: Annotated[int, typer.Option("-k", help="how many items")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
    backend: Backend = None,
    explain: Explain = False,
    mix: MixName = None,
    domain: Domain = None,
) -> None:
    """Top-K items for a known user or an ad-hoc history (with --explain: a reason for each)."""
    from llmrec import recipes
    from llmrec.prompts.time import parse_time, split_timed

    with reported():
        items, times = None, None
        if history is not None:
            items, times = split_timed([h.strip() for h in history.split(",") if h.strip()], "--history")
        moment = None if now is None else parse_time(now, "--now", "now")
        recs = recipes.recommend(run_dir, user=user, history=items, k=k, backend=backend, explain=explain,
                                 mix=mix, times=times, now=moment, domain=domain)  # fmt: skip
    if as_json:
        for r in recs:
            row = {"rank": r.rank, "item": r.item, "title": r.title, "score": r.score}
            if explain:
                row |= {"reason": r.reason, "evidence": r.evidence}
            sys.stdout.write(json.dumps(row) + "\n")
        return
    table = Table(title=f"top-{k} for {'user ' + user if user else 'the given history'}")
    columns = ("rank", "item", "title", "log-prob") + (("reason", "evidence") if explain else ())
    for col in columns:
        table.add_column(col)
    for r in recs:
        cells = [str(r.rank), r.item, r.title, f"{r.score:.3f}"]
        if explain:
            cells += [r.reason or "", "; ".join(e["title"] or e["item"] for e in r.evidence or [])]
        table.add_row(*cells)
    Console().print(table)


@app.command()
def score(
    run_dir: Path,
    out: Annotated[Path, typer.Option("--out", help="recs.parquet or recs.jsonl")],
    users: Annotated[
        Path | None, typer.Option("--users", help="user ids: one per line, or a table with 'user'")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="score an evaluation split instead: valid or test")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="items per user")] = 10,
    shard_size: Annotated[int, typer.Option(help="users per atomic shard")] = 1000,
    limit: Annotated[int | None, typer.Option(help="only the first N users")] = None,
    strict: Annotated[bool, typer.Option(help="stop at the first bad user instead of logging it")] = False,
    backend: Backend = None,
    explain: Explain = False,
    mix: MixName = None,
    domain: Domain = None,
) -> None:
    """Offline batch scoring: one row per (user, rank); resumable after a kill."""
    from llmrec import recipes

    with reported():
        recipes.score(run_dir, out, users_file=users, split_name=split, k=k, shard_size=shard_size,
                      limit=limit, strict=strict, backend=backend, explain=explain,
                      mix=mix, domain=domain)  # fmt: skip


@app.command()
def baseline(
    config: Path,
    model: Annotated[
        str, typer.Option(help="sasrec (full cross-entropy), popularity, or content (item-text similarity)")
    ] = "sasrec",
    overrides: Overrides = None,
) -> None:
    """Fit a baseline on the prepared split; write baselines_dir/<model>/metrics-{valid,test}.json."""
    with reported():
        cfg = _load(config, overrides)
        from llmrec import recipes

        recipes.baseline(cfg, model)


items_app = typer.Typer(help="Change a trained run's catalogue without retraining.", no_args_is_help=True)
app.add_typer(items_app, name="items")


@items_app.command("add")
def items_add(
    run_dir: Path,
    items_file: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet/JSONL with the run's item columns")],
) -> None:
    """New items join the catalogue (atomic ids: each item's row is predicted from its text)."""
    from llmrec.catalogue import add_items

    with reported():
        add_items(run_dir, items_file)


@items_app.command("remove")
def items_remove(
    run_dir: Path,
    ids_file: Annotated[Path, typer.Argument(help="item ids, one per line, or a table with 'item'")],
) -> None:
    """Items leave recommendations (out of stock); the model is untouched."""
    from llmrec.catalogue import remove_items

    with reported():
        remove_items(run_dir, ids_file)


@app.command()
def serve(
    run_dir: Path,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8000,
    backend: Backend = None,
    mix: MixName = None,
    max_batch: Annotated[int, typer.Option(help="most users decoded in one call", min=1)] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="longest a request waits for its batch to fill", min=0)
    ] = 10.0,
    max_queue: Annotated[int, typer.Option(help="waiting requests beyond this get 503", min=1)] = 1024,
    max_body_bytes: Annotated[int, typer.Option(help="larger request bodies get 413", min=1)] = 1024 * 1024,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="require `Authorization: Bearer KEY` (the probes /healthz, /readyz, /metrics stay open)",
            envvar="LLMREC_API_KEY",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """HTTP API over a run (POST /recommend, /recommend/batch; GET /healthz, /readyz, /metrics, /docs)."""
    with reported():
        try:
            from llmrec.serve import serve as run_server
        except ImportError as exc:
            from llmrec.errors import InputError

            raise InputError(f"llmrec serve needs {exc.name}: pip install 'llmrec[serve]'") from exc

        run_server(run_dir, host=host, port=port, backend=backend, mix=mix, max_batch=max_batch,
                   max_wait_ms=max_wait_ms, max_queue=max_queue, max_body_bytes=max_body_bytes,
                   api_key=api_key or None)  # fmt: skip


@app.command()
def quickstart(
    config: Annotated[Path | None, typer.Option(help="override the built-in quickstart config")] = None,
    eval_users: Annotated[int, typer.Option(help="test users to evaluate")] = 200,
    steps: Annotated[int | None, typer.Option(help="override train.max_steps")] = None,
) -> None:
    """Prepare ML-100K, LoRA-tune SmolLM2 briefly (and SASRec-CE for the validation choice), evaluate
    the chosen default beside the LLM alone, SASRec-CE and popularity, show 3 users' top-5."""
    from llmrec import quickstart as qs

    with reported():
        qs.run(config, eval_users=eval_users, steps=steps)


if __name__ == "__main__":
    app()
