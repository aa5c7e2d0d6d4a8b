"""Several domains in one run (`data.sources`) and a run started from another (`model.start_from`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from helpers import Server
from test_pipeline import runner, write_config

from llmrec.baselines import Popularity, SasrecRecommender
from llmrec.cli import app
from llmrec.errors import InputError
from llmrec.generate import Recommender
from llmrec.run_dir import RunDir

ATOMIC = {"prompts": {"objective": "every_item", "template": "item_list.j2", "include_titles": False}}


def write_domain(folder: Path, noun: str, seed: int, n_users: int = 30, n_items: int = 20) -> dict:
    """A generic source whose users walk its catalogue in steps of 1; titles '<noun> <i>'."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["uid,iid,ts"]
    for u in range(n_users):
        start = (u * 7 + seed) % n_items
        rows += [f"u{u},m{(start + t) % n_items},{1_600_000_000 + 60 * t}" for t in range(5 + (u + seed) % 3)]
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    genres = ["red", "green", "blue"]
    (folder / "items.csv").write_text(
        "iid,name,genre\n" + "".join(f"m{i},{noun} {i},{genres[i % 3]}\n" for i in range(n_items))
    )
    columns = {"user": "uid", "item": "iid", "timestamp": "ts", "title": "name", "text": ["genre"]}
    return {"format": "generic", "interactions": str(folder / "interactions.csv"),
            "items": str(folder / "items.csv"), "columns": columns}  # fmt: skip


def domains_config(tmp_path: Path, backbone: Path, sources: list[dict], **train) -> Path:
    """write_config's tiny atomic recipe over `sources` in place of its single data source."""
    path = Path(write_config(tmp_path, backbone, "atomic", ATOMIC, **train))
    cfg = yaml.safe_load(path.read_text())
    cfg["data"] = {"sources": sources}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory, tiny_backbone) -> Path:
    root = tmp_path_factory.mktemp("two-domains")
    sources = [{"domain": "films"} | write_domain(root / "films", "Film", 0),
               {"domain": "books"} | write_domain(root / "books", "Book", 1)]  # fmt: skip
    config = domains_config(root, tiny_backbone, sources, max_steps=4, eval_every=0)
    for args in (["prepare", str(config)], ["train", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return root / "run"


def of(domain: str, items: list[str]) -> bool:
    return bool(items) and all(i.startswith(domain + ":") for i in items)


def test_two_domains_keep_their_catalogues_apart(two_domains):
    run = RunDir(two_domains)
    split = run.load_split()
    assert split.domains == ["films", "books"]
    assert len(split.items) == 40 and set(split.users["domain"]) == {"films", "books"}
    # the same raw ids in both sources are different items and users
    assert {"films:m0", "books:m0"} <= set(split.items["item"]) and "books:u0" in set(split.users["user"])

    rec = Recommender.from_run(run.path)
    films, books = ["films:m1", "films:m2", "films:m3"], ["books:m4", "books:m5"]
    assert of("books", [r.item for r in rec.recommend([films], k=10, domains="books")[0]])
    lists = rec.recommend([films, books], k=10, domains=["films", "books"])
    assert of("films", [r.item for r in lists[0]]) and of("books", [r.item for r in lists[1]])
    scores = rec.score_catalogue([books], domains=["books"])[0]
    outside = torch.tensor([i.startswith("films:") for i in rec.item_ids.items])
    assert torch.isinf(scores[outside]).all() and torch.isfinite(scores[~outside & (scores > -1e9)]).any()

    with pytest.raises(InputError, match="several domains") as missing:
        rec.recommend([films], k=5)
    assert missing.value.field == "domain"
    with pytest.raises(InputError, match="films, books") as unknown:
        rec.recommend([films], k=5, domains="music")
    assert unknown.value.field == "domain"

    # the baselines a run compares with draw from the asked domain too
    assert of("books", Popularity(split).recommend(films, 10, True, "books"))
    sasrec = SasrecRecommender(split, run.load_config().baselines.sasrec)
    assert of("films", sasrec.recommend([books], 10, True, ["films"])[0])


def test_evaluate_reports_every_domain_and_they_add_up(two_domains):
    result = runner.invoke(app, ["evaluate", str(two_domains), "--split", "test"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "by domain" in result.output
    metrics = json.loads(RunDir(two_domains).metrics("test").read_text())
    for numbers in (metrics, metrics["baselines"]["popularity"]):
        parts = numbers["by_domain"]
        assert set(parts) == {"films", "books"}
        assert sum(p["users"] for p in parts.values()) == numbers["users"] == 60
        for key in ("ndcg@10", "hr@10", "mrr"):
            weighted = sum(p[key] * p["users"] for p in parts.values()) / numbers["users"]
            assert weighted == pytest.approx(numbers[key], abs=1e-9)
    lists = pd.read_parquet(RunDir(two_domains).path / "lists-test.parquet")
    for user, items in zip(lists["user"], lists["items"], strict=True):
        assert of(user.split(":")[0], list(items))  # every user's list is of their own domain


def test_recommend_and_score_take_the_domain(two_domains, tmp_path):
    result = runner.invoke(app, ["recommend", str(two_domains), "--user", "films:u1", "--json", "-k", "5"])
    assert result.exit_code == 0, result.output
    assert of("films", [json.loads(line)["item"] for line in result.stdout.splitlines()])  # the user's own
    args = ["recommend", str(two_domains), "--history", "films:m1,films:m2", "--json", "-k", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "domain" in result.output
    result = runner.invoke(app, [*args, "--domain", "books"])
    assert result.exit_code == 0, result.output
    assert of("books", [json.loads(line)["item"] for line in result.stdout.splitlines()])
    result = runner.invoke(app, [*args, "--domain", "music"])
    assert result.exit_code == 2 and "--domain" in result.output and "films, books" in result.output

    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["score", str(two_domains), "--split", "test", "--out", str(out), "-k", "3"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out)
    assert len(rows) == 60 * 3 and all(
        r.item.split(":")[0] == r.user.split(":")[0] for r in rows.itertuples()
    )
    crossed = tmp_path / "crossed.parquet"
    args = [
        "score",
        str(two_domains),
        "--split",
        "test",
        "--out",
        str(crossed),
        "-k",
        "3",
        "--domain",
        "books",
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert of("books", pd.read_parquet(crossed)["item"].tolist())


@pytest.mark.parametrize(
    ("sources", "field", "message"),
    [
        ([{"domain": "films"}, {"domain": "films"}], "data.sources", "both named domain 'films'"),
        ([{"domain": "my films"}], "data.sources.0.domain", "pattern"),
        ([{}], "data.sources.0.domain", "Field required"),
    ],
)
def test_bad_domains_name_the_field_and_write_nothing(tmp_path, tiny_backbone, sources, field, message):
    source = write_domain(tmp_path / "films", "Film", 0)
    config = domains_config(tmp_path, tiny_backbone, [s | source for s in sources])
    result = runner.invoke(app, ["prepare", str(config)])
    assert result.exit_code == 2, result.output
    assert field in result.output and message in result.output
    assert not (tmp_path / "prepared").exists()


def test_sources_replace_the_single_source_keys(tmp_path, tiny_backbone):
    config = domains_config(
        tmp_path, tiny_backbone, [{"domain": "films"} | write_domain(tmp_path / "f", "Film", 0)]
    )
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["path"] = "elsewhere"
    config.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["prepare", str(config)])
    assert result.exit_code == 2 and "sources replaces path" in result.output and "data" in result.output


@pytest.mark.process
def test_the_server_takes_the_domain(two_domains):
    srv = Server(two_domains)
    try:
        import httpx

        post = lambda body: httpx.post(srv.url + "/recommend", json=body)  # noqa: E731
        response = post({"history": ["films:m1"], "k": 3})
        assert response.status_code == 422 and response.json()["field"] == "domain"
        response = post({"history": ["films:m1"], "k": 3, "domain": "music"})
        assert response.status_code == 422 and response.json()["field"] == "domain"
        response = post({"history": ["films:m1"], "k": 3, "domain": "books"})
        assert response.status_code == 200 and of("books", [r["item"] for r in response.json()["items"]])
        response = post({"user": "books:u2", "k": 3})  # a known user: their own domain
        assert response.status_code == 200 and of("books", [r["item"] for r in response.json()["items"]])
    finally:
        srv.stop()


def test_items_add_refuses_a_run_over_several_domains(two_domains, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("iid,name,genre\nm99,Film 99,red\n")
    result = runner.invoke(app, ["items", "add", str(two_domains), str(new)])
    assert result.exit_code == 2 and "data.sources" in result.output
