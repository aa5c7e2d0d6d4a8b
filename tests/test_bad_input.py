"""The malformed-input corpus: a user's mistakes, through the real CLI, each ending in exit status 2,
a message that names the file, the line or record and the field, and nothing written or deleted."""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from test_pipeline import runner, write_config

from llmrec.cli import app


@dataclass
class World:
    """A folder with the user's CSVs and config, its prepared data and a trained tiny run."""

    root: Path
    config: Path
    run: Path
    prepared: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_backbone) -> World:
    root = tmp_path_factory.mktemp("world")
    config = Path(write_config(root, tiny_backbone, max_steps=2, eval_every=0))
    for args in (["prepare", str(config)], ["train", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return World(root, config, root / "run", root / "prepared")


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `roots` with its size and modification time."""
    state = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.stat()
            state[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return state


def edited_config(world: World, case_dir: Path, changes: dict, name: str = "config.yaml") -> Path:
    """A copy of the world's config in `case_dir` with dotted keys changed (paths stay absolute)."""
    cfg = yaml.safe_load(world.config.read_text())
    cfg |= {"prepared_dir": str(world.prepared), "run_dir": str(case_dir / "run")}
    for section in ("interactions", "items"):
        cfg["data"][section] = str(world.root / cfg["data"][section])
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = case_dir / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class Case:
    """`args(world, case_dir)` -> CLI arguments (after any files the case needs are written);
    `expect`: strings the message must contain (file, line/record, field)."""

    name: str
    args: object
    expect: list[str] = field(default_factory=list)


def _prepare_with(changes: dict, csv: str | None = None, items: str | None = None):
    def args(w: World, d: Path) -> list[str]:
        cfg = edited_config(w, d, {"prepared_dir": str(d / "prepared"), **changes})
        data = yaml.safe_load(cfg.read_text())
        if csv is not None:
            (d / "inter.csv").write_text(csv)
            data["data"]["interactions"] = str(d / "inter.csv")
        if items is not None:
            (d / "items.csv").write_text(items)
            data["data"]["items"] = str(d / "items.csv")
        cfg.write_text(yaml.safe_dump(data))
        return ["prepare", str(cfg)]

    return args


def _train_with(changes: dict):
    return lambda w, d: ["train", str(edited_config(w, d, changes))]


def _run(command: str, *extra: str):
    return lambda w, d: [command, str(w.run), *extra]


def _score(*extra: str):
    return lambda w, d: ["score", str(w.run), "--split", "test", "--out", str(d / "recs.parquet"), *extra]


HEADER = "uid,iid,ts\n"


def _in_user_folder(w: World, d: Path, key: str, command: str) -> list[str]:
    """The config sits in a folder with the user's data, and names that folder as an output."""
    (d / "my-data.csv").write_text("precious\n")
    cfg = edited_config(w, d, {key: "."})
    return [command, str(cfg)]


def _sasrec_into_user_folder(w: World, d: Path) -> list[str]:
    """train would put SASRec-CE for the choice into a folder of the user's: refused before the LLM trains."""
    (d / "mine" / "sasrec").mkdir(parents=True)
    (d / "mine" / "sasrec" / "notes.txt").write_text("precious\n")
    changes = {
        "baselines_dir": str(d / "mine"),
        "run_dir": str(d / "run"),
        "generate.sasrec_time_share": 0.25,
    }
    return ["train", str(edited_config(w, d, changes))]


def _config_is_folder(w: World, d: Path) -> list[str]:
    (d / "cfg.yaml").mkdir()
    return ["prepare", str(d / "cfg.yaml")]


def _config_not_utf8(w: World, d: Path) -> list[str]:
    (d / "cfg.yaml").write_bytes(b"run_dir: run\nprepared_dir: caf\xe9\n")
    return ["prepare", str(d / "cfg.yaml")]


def _duplicate_key(w: World, d: Path) -> list[str]:
    (d / "cfg.yaml").write_text("run_dir: a\ntrain:\n  lr: 0.1\n  lr: 0.2\n")
    return ["train", str(d / "cfg.yaml")]


def _prepared_is_file(w: World, d: Path) -> list[str]:
    (d / "prepared.txt").write_text("mine\n")
    return ["prepare", str(edited_config(w, d, {"prepared_dir": str(d / "prepared.txt")}))]


def _prepared_is_a_run(w: World, d: Path) -> list[str]:
    return ["prepare", str(edited_config(w, d, {"prepared_dir": str(w.run)}))]


def _no_prepared(w: World, d: Path) -> list[str]:
    return ["train", str(edited_config(w, d, {"prepared_dir": str(d / "nothing-here")}))]


def _out_is_folder(w: World, d: Path) -> list[str]:
    (d / "recs.parquet").mkdir()
    (d / "recs.parquet" / "keep.txt").write_text("mine\n")
    return ["score", str(w.run), "--split", "test", "--out", str(d / "recs.parquet")]


def _out_under_file(w: World, d: Path) -> list[str]:
    (d / "file.txt").write_text("mine\n")
    return ["score", str(w.run), "--split", "test", "--out", str(d / "file.txt" / "recs.parquet")]


def _strict_unknown_user(w: World, d: Path) -> list[str]:
    (d / "users.txt").write_text("u1\nghost\n")
    return ["score", str(w.run), "--users", str(d / "users.txt"), "--out", str(d / "r.parquet"), "--strict"]


def _missing_users_file(w: World, d: Path) -> list[str]:
    return ["score", str(w.run), "--users", str(d / "absent.txt"), "--out", str(d / "r.parquet")]


def _baseline_into_user_folder(w: World, d: Path) -> list[str]:
    (d / "sasrec").mkdir()
    (d / "sasrec" / "notes.txt").write_text("mine\n")
    return ["baseline", str(edited_config(w, d, {"baselines_dir": str(d)}))]


CASES = [
    # prepare: outputs that would overwrite the user's files
    Case("prepared_dir is the user's folder", lambda w, d: _in_user_folder(w, d, "prepared_dir", "prepare"),
         ["not written by llmrec", "prepared_dir"]),
    Case("prepared_dir is a file", _prepared_is_file, ["prepared.txt", "is a file", "prepared_dir"]),
    Case("prepared_dir is a run", _prepared_is_a_run, ["holds llmrec run output", "prepared_dir"]),
    # prepare: the config file itself
    Case("config path is a folder", _config_is_folder, ["cfg.yaml", "is a folder"]),
    Case("config is not UTF-8", _config_not_utf8, ["cfg.yaml", "line 2", "cannot decode byte 0xe9"]),
    Case("duplicate key in the config", _duplicate_key, ["cfg.yaml", "duplicate key 'lr'", "line 3"]),
    Case("model name mistyped (a path)", _train_with({"model.name": "./no-such-model"}),
         ["no-such-model", "model.name", "no such folder"]),
    Case("hub model not cached, offline", _prepare_with({"model.name": "nobody/SmolLM9-135M"}),
         ["nobody/SmolLM9-135M", "not in the local Hugging Face cache", "model.name"]),
    # prepare: the data
    Case("shifted columns", _prepare_with({}, HEADER + "0,u1,m1,1\n1,u1,m2,2\n"),
         ["inter.csv", "line 2", "4 fields, but the header has 3"]),
    Case("title column named but missing", _prepare_with({}, None, "iid,genre\nm1,drama\n"),
         ["items.csv", "header", "field 'name'", "missing title column"]),
    Case("text column named but missing", _prepare_with({}, None, "iid,name\nm1,A\n"),
         ["items.csv", "header", "field 'genre'"]),
    Case("a millisecond time among seconds",
         _prepare_with({}, HEADER + "u1,m1,1600000000\nu1,m2,1600000060\nu1,m3,1600000120000\n"),
         ["inter.csv", "line 4", "field 'ts'", "milliseconds"]),
    Case("infinite timestamp", _prepare_with({}, HEADER + "u1,m1,1\nu1,m2,inf\n"),
         ["inter.csv", "line 3", "field 'ts'", "not a finite number"]),
    Case("line numbers after a quoted newline", _prepare_with({}, HEADER + '"u\n1",m1,1\nu1,m2,later\n'),
         ["inter.csv", "line 4", "field 'ts'"]),
    Case("empty user id", _prepare_with({}, HEADER + "u1,m1,1\n,m2,2\n"), ["inter.csv", "line 3", "'uid'"]),
    # train: settings out of range
    Case("max_steps negative", _train_with({"train.max_steps": -5}), ["train.max_steps", "-5"]),
    Case("lr negative", _train_with({"train.lr": -0.1}), ["config.yaml", "train.lr"]),
    Case("batch size zero", _train_with({"train.batch_size": 0}), ["config.yaml", "train.batch_size"]),
    Case("beams negative", _train_with({"generate.num_beams": -3}), ["config.yaml", "generate.num_beams"]),
    Case("LoRA rank zero", _train_with({"model.lora.r": 0}), ["config.yaml", "model.lora.r"]),
    Case("LoRA dropout 3.0", _train_with({"model.lora.dropout": 3.0}), ["config.yaml", "model.lora.dropout"]),
    Case("unknown setting", _train_with({"train.learning_rate": 0.1}), ["train.learning_rate"]),
    Case("no prepared data", _no_prepared, ["nothing-here", "llmrec prepare", "prepared_dir"]),
    Case("run_dir is the user's folder", lambda w, d: _in_user_folder(w, d, "run_dir", "train"),
         ["not written by llmrec", "run_dir"]),
    # evaluate
    Case("train's SASRec-CE would go into the user's folder", _sasrec_into_user_folder,
         ["sasrec", "not written by llmrec", "baselines_dir"]),
    Case("evaluate --limit -1", _run("evaluate", "--limit", "-1"), ["--limit", "greater than or equal to 1"]),
    Case("evaluate --limit 0", _run("evaluate", "--limit", "0"), ["--limit"]),
    Case("evaluate --split train", _run("evaluate", "--split", "train"), ["--split", "'valid' or 'test'"]),
    Case("evaluate a folder that is no run", lambda w, d: ["evaluate", str(d)], ["not a run directory"]),
    # recommend
    Case("recommend -k 0", _run("recommend", "--user", "u1", "-k", "0"), ["-k", "than or equal to 1"]),
    Case("recommend an unknown user", _run("recommend", "--user", "ghost"), ["unknown user 'ghost'", "user"]),
    Case("recommend an empty history", _run("recommend", "--history", ""), ["history is empty", "history"]),
    Case("recommend an unknown item", _run("recommend", "--history", "m1,nope"), ["nope", "history"]),
    Case("recommend --user and --history", _run("recommend", "--user", "u1", "--history", "m1"),
         ["exactly one"]),
    # score
    Case("score --shard-size -1", _score("--shard-size", "-1"), ["--shard-size", "than or equal to 1"]),
    Case("score --shard-size 0", _score("--shard-size", "0"), ["--shard-size"]),
    Case("score -k -9", _score("-k", "-9"), ["-k", "-9"]),
    Case("score --limit -3", _score("--limit", "-3"), ["--limit", "-3"]),
    Case("score --split train", lambda w, d: ["score", str(w.run), "--split", "train", "--out",
                                              str(d / "r.parquet")], ["--split", "'valid' or 'test'"]),
    Case("score --out is a folder", _out_is_folder, ["recs.parquet", "is a folder", "--out"]),
    Case("score --out inside a file", _out_under_file, ["file.txt", "is not a folder", "--out"]),
    Case("score --out extension", lambda w, d: ["score", str(w.run), "--split", "test", "--out",
                                                str(d / "recs.csv")], ["recs.csv", ".parquet or .jsonl"]),
    Case("score --strict unknown user", _strict_unknown_user, ["users.txt", "user ghost", "unknown user"]),
    Case("score --users missing", _missing_users_file, ["absent.txt", "file not found"]),
    # baseline
    Case("baseline unknown model", lambda w, d: ["baseline", str(w.config), "--model", "bert4rec"],
         ["--model", "'sasrec', 'popularity' or 'content'"]),
    Case("baseline SASRec dropout 1.5", lambda w, d: ["baseline", str(edited_config(
        w, d, {"baselines.sasrec.dropout": 1.5}))], ["config.yaml", "baselines.sasrec.dropout"]),
    Case("baseline heads do not divide hidden", lambda w, d: ["baseline", str(edited_config(
        w, d, {"baselines.sasrec.heads": 3}))], ["config.yaml", "multiple of heads"]),
    Case("baseline into a user's folder", _baseline_into_user_folder, ["sasrec", "not written by llmrec"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_names_it_and_touches_nothing(case: Case, world: World, tmp_path: Path):
    args = case.args(world, tmp_path)
    before = snapshot(tmp_path, world.root)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, f"{args}: {result.output}\n{result.exception!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.output
    assert "Traceback" not in message
    for text in case.expect:
        assert text in message, f"{text!r} not in: {message}"
    assert snapshot(tmp_path, world.root) == before  # nothing written, nothing deleted


def test_a_second_score_on_the_same_output_stops_at_once(world: World, tmp_path: Path):
    out = tmp_path / "recs.parquet"
    parts = tmp_path / "recs.parquet.parts"
    parts.mkdir()
    with (parts / "lock").open("a+") as held:  # what a running `llmrec score` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = runner.invoke(app, ["score", str(world.run), "--split", "test", "--out", str(out)])
    assert result.exit_code == 2 and "in progress" in result.output and "recs.parquet.parts" in result.output
    assert not out.exists() and not (parts / "manifest.json").exists()
    result = runner.invoke(app, ["score", str(world.run), "--split", "test", "--out", str(out), "-k", "2"])
    assert result.exit_code == 0, result.output  # the lock dies with its holder


def test_users_file_with_bom_and_repeats(world: World, tmp_path: Path):
    import pandas as pd

    users = tmp_path / "users.txt"
    users.write_bytes("\ufeffu1\nu2\nu1\n".encode())
    out = tmp_path / "recs.jsonl"
    result = runner.invoke(
        app, ["score", str(world.run), "--users", str(users), "--out", str(out), "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_json(out, lines=True, dtype={"user": str})
    assert frame["user"].tolist() == ["u1", "u1", "u2", "u2"]  # u1 found despite the BOM, scored once
    assert (tmp_path / "recs.jsonl.errors.jsonl").read_text() == ""


def test_run_is_self_contained(world: World, tmp_path: Path, monkeypatch):
    """A run recommends without its prepared folder, from any working directory; resuming on
    re-prepared data is refused."""
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    shutil.move(world.prepared, tmp_path / "moved-away")
    try:
        monkeypatch.chdir(tmp_path.parent)
        for args in (["recommend", str(run), "--user", "u1", "--json"],
                     ["recommend", str(run), "--history", "m1,m2", "--json"],
                     ["evaluate", str(run), "--limit", "5"]):  # fmt: skip
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
    finally:
        shutil.move(tmp_path / "moved-away", world.prepared)
    # the prepared data changes under an unfinished run: resuming would mix two data sets
    cfg = edited_config(world, tmp_path, {"run_dir": str(run), "train.max_steps": 4})
    (run / "prepared.json").write_text('{"prepared_dir": "elsewhere", "fingerprint": "0000"}\n')
    before = snapshot(run)
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2 and "prepared data changed" in result.output and "run_dir" in result.output
    assert snapshot(run) == before


def test_python_api_checks_the_shape_of_histories(world: World):
    from llmrec import InputError, Recommender

    rec = Recommender.from_run(world.run)
    for wrong, says in ((["m1", "m2"], "entry 1 is str 'm1'"), ("m12", "got str"), ([[1, 2]], "holds 1")):
        with pytest.raises(InputError, match=says):
            rec.recommend(wrong)
    with pytest.raises(InputError, match="k must be"):
        rec.recommend([["m1"]], k=0)
    assert len(rec.recommend([["m1", "m2"]], k=3)[0]) == 3


def test_version_and_help_do_not_load_torch():
    import subprocess
    import sys

    code = "import sys, llmrec.cli; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("llmrec ")
