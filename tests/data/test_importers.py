"""Importers: every format loads, and malformed input fails with file, line/record and field."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec.config import Columns, DataConfig
from llmrec.data import leave_one_out, load_catalog
from llmrec.errors import InputError

COLS = Columns(user="uid", item="iid", timestamp="ts", title="name", text=["genre"])


def generic(tmp_path, inter_text: str | bytes, items_text: str | bytes | None = None, suffix=".csv"):
    inter = tmp_path / f"inter{suffix}"
    inter.write_bytes(inter_text if isinstance(inter_text, bytes) else inter_text.encode())
    items = None
    if items_text is not None:
        items = tmp_path / "items.csv"
        items.write_bytes(items_text if isinstance(items_text, bytes) else items_text.encode())
    cfg = DataConfig(
        format="generic", interactions=str(inter), items=str(items) if items else None, columns=COLS
    )
    return load_catalog(cfg)


GOOD_ITEMS = "iid,name,genre\nm1,Alpha,drama\nm2,Beta,comedy\nm3,Gamma,drama\n"


def test_builtin_movielens_loads():
    cat = load_catalog(DataConfig(format="movielens", path="builtin:ml-100k"))
    assert len(cat.interactions) == 100_000 and len(cat.items) == 1682
    assert cat.items.loc[cat.items["item"] == "1", "title"].item() == "Toy Story (1995)"
    assert "Comedy" in cat.items.loc[cat.items["item"] == "1", "text"].item()
    split = leave_one_out(cat)
    assert split.users["test"].notna().sum() == 943


def test_generic_csv_and_items(tmp_path):
    cat = generic(tmp_path, "uid,iid,ts\nu1,m1,3\nu1,m2,1\nu1,m3,2\n", GOOD_ITEMS)
    assert set(cat.items["title"]) == {"Alpha", "Beta", "Gamma"}
    assert leave_one_out(cat).users.iloc[0][["train", "valid", "test"]].tolist() == [["m2"], "m3", "m1"]


def test_generic_iso_dates_parquet_and_jsonl(tmp_path):
    frame = pd.DataFrame(
        {"uid": ["a", "a", "a"], "iid": ["x", "y", "z"], "ts": ["2024-01-03", "2024-01-01", "2024-01-02"]}
    )
    frame.to_parquet(tmp_path / "i.parquet")
    cfg = DataConfig(format="generic", interactions=str(tmp_path / "i.parquet"), columns=COLS)
    assert leave_one_out(load_catalog(cfg)).users.iloc[0]["test"] == "x"
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    cfg = DataConfig(format="generic", interactions=str(tmp_path / "i.jsonl"), columns=COLS)
    assert leave_one_out(load_catalog(cfg)).users.iloc[0]["test"] == "x"


def test_p5_and_lcrec(tmp_path):
    (tmp_path / "Toy.txt").write_text("1 1 2 3\n2 2 3 4 5\n")
    (tmp_path / "Toy_item2attributes.json").write_text(json.dumps({"1": [7, 8]}))
    cat = load_catalog(DataConfig(format="p5", path=str(tmp_path / "Toy.txt")))
    assert (
        len(cat.interactions) == 7
        and cat.items.loc[cat.items["item"] == "1", "text"].item() == "attributes 7 8"
    )
    lc = tmp_path / "lc"
    lc.mkdir()
    (lc / "Games.inter.json").write_text(json.dumps({"0": [0, 1, 2], "1": [1, 2, 0]}))
    (lc / "Games.item.json").write_text(
        json.dumps({str(i): {"title": f"G{i}", "brand": "B"} for i in range(3)})
    )
    cat = load_catalog(DataConfig(format="lcrec", path=str(lc)))
    assert leave_one_out(cat).users.set_index("user").loc["1", "test"] == "0"
    assert cat.items["title"].tolist() == ["G0", "G1", "G2"]


@pytest.mark.parametrize(
    ("inter", "items", "message", "where", "field"),
    [
        ("uid,item,ts\nu1,m1,1\n", None, "missing item column", "header", "iid"),
        ("", None, "file is empty", None, None),
        ("uid,iid,ts\n", None, "no rows", None, None),
        ("uid,iid,ts\nu1,m1,1\nu1,m2,yesterday\n", None, "is not a number (unix time)", "line 3", "ts"),
        ("uid;iid;ts\nu1;m1;1\n", None, "is the delimiter ';'", "header", "uid"),
        (
            "uid,iid,ts\nu1,m1,1\nu1,m9,2\n",
            GOOD_ITEMS,
            "item 'm9' is not in the items table",
            "line 3",
            "item",
        ),
        (
            "uid,iid,ts\nu1,m1,1\n",
            "iid,name,genre\nm1,A,x\nm1,B,y\n",
            "duplicate item id 'm1'",
            "line 3",
            "item",
        ),
        (b"uid,iid,ts\nu1,m1,1\nu1,m\xff2,2\n", None, "cannot decode byte 0xff", "line 3", None),
        ("uid,iid,ts\nu1,m1,1\n,m2,2\n", None, "empty value", "line 3", "uid"),
        ("uid,iid,ts\nu1,m1,1\nu1,m2,\n", None, "empty value", "line 3", "ts"),
        ("uid,iid,ts\nu1,m1,1\nu1,m2,2,9,9\n", None, "5 fields, but the header has 3", "line 3", None),
        # every row one field more than the header: pandas would make the first field the index
        ("uid,iid,ts\n0,u1,m1,1\n1,u1,m2,2\n", None, "4 fields, but the header has 3", "line 2", None),
        # line numbers count the lines a quoted field spans
        ('uid,iid,ts\n"u\n1",m1,1\nu1,m2,soon\n', None, "is not a number", "line 4", "ts"),
        (
            "uid,iid,ts\nu1,m1,1600000000\nu1,m2,1600000060\nu1,m3,1600000120000\n",
            None,
            "looks like milliseconds while most timestamps are seconds",
            "line 4",
            "ts",
        ),
        ("uid,iid,ts\nu1,m1,1\nu1,m2,inf\n", None, "is not a finite number", "line 3", "ts"),
        ("uid,iid,ts\nu1,m1,2024-01-01\nu1,m2,someday\n", None, "is not an ISO-8601 date", "line 3", "ts"),
        ("uid,iid,ts,uid\nu1,m1,1,u1\n", None, "column 'uid' appears twice", "line 1", "uid"),
        ("uid,iid,ts\nu1,m1,1\n", "iid,genre\nm1,drama\n", "missing title column", "header", "name"),
        (
            "uid,iid,ts\nu1,m1,1\nu1,m2,2\n",
            "iid,name\nm1,A\nm2,B\n",
            "missing text column",
            "header",
            "genre",
        ),
    ],
)
def test_generic_malformed(tmp_path, inter, items, message, where, field):
    with pytest.raises(InputError) as info:
        generic(tmp_path, inter, items)
    err = info.value
    assert message in str(err)
    assert err.path and err.path.endswith((".csv",))
    assert err.where == where
    assert err.field == field


def test_unsupported_extension_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(InputError, match="unsupported file type"):
        load_catalog(DataConfig(format="generic", interactions=str(tmp_path / "x.xlsx")))
    with pytest.raises(InputError, match="file not found"):
        load_catalog(DataConfig(format="generic", interactions=str(tmp_path / "nope.csv")))


def test_bad_jsonl_line(tmp_path):
    (tmp_path / "i.jsonl").write_text('{"uid": "a", "iid": "x", "ts": 1}\n{"uid": "a", \n')
    with pytest.raises(InputError) as info:
        load_catalog(DataConfig(format="generic", interactions=str(tmp_path / "i.jsonl"), columns=COLS))
    assert info.value.where == "line 2" and "invalid JSON" in str(info.value)


def test_movielens_malformed(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n2\t1\t3\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|" + "|".join("0" * 19) + "\n")
    with pytest.raises(InputError) as info:
        load_catalog(DataConfig(format="movielens", path=str(tmp_path)))
    assert info.value.where == "line 2" and "expected 4 tab-separated fields" in str(info.value)
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n2\t7\t3\t881250950\n")
    with pytest.raises(InputError, match="item '7' is not in the items table") as info:
        load_catalog(DataConfig(format="movielens", path=str(tmp_path)))
    assert info.value.path.endswith("u.data") and info.value.where == "line 2"


def test_p5_non_integer_item(tmp_path):
    (tmp_path / "Toy.txt").write_text("1 1 2 3\n2 2 x 4\n")
    with pytest.raises(InputError) as info:
        load_catalog(DataConfig(format="p5", path=str(tmp_path / "Toy.txt")))
    assert info.value.where == "line 2" and info.value.field == "item"


def test_lcrec_bad_json(tmp_path):
    (tmp_path / "G.inter.json").write_text('{"0": [1, 2,\n')
    (tmp_path / "G.item.json").write_text("{}")
    with pytest.raises(InputError, match="invalid JSON") as info:
        load_catalog(DataConfig(format="lcrec", path=str(tmp_path)))
    assert info.value.path.endswith("G.inter.json")


def test_compressed_csv_json_array_bom_and_old_dates(tmp_path):
    """What pandas reads without effort just works: gzip, a JSON array, a UTF-8 BOM, dates before 1677."""
    import gzip

    rows = "uid,iid,ts\nu1,m1,1500-01-03\nu1,m2,1500-01-01\nu1,m3,1500-01-02\n"
    (tmp_path / "i.csv.gz").write_bytes(gzip.compress(("\ufeff" + rows).encode()))
    cfg = DataConfig(format="generic", interactions=str(tmp_path / "i.csv.gz"), columns=COLS)
    assert leave_one_out(load_catalog(cfg)).users.iloc[0][["train", "valid", "test"]].tolist() == [
        ["m2"],
        "m3",
        "m1",
    ]
    records = [{"uid": "u1", "iid": f"m{i}", "ts": i} for i in (3, 1, 2)]
    (tmp_path / "i.json").write_text(json.dumps(records))
    cfg = DataConfig(format="generic", interactions=str(tmp_path / "i.json"), columns=COLS)
    assert leave_one_out(load_catalog(cfg)).users.iloc[0]["test"] == "m3"


def test_boolean_timestamps_are_refused(tmp_path):
    (tmp_path / "i.jsonl").write_text('{"uid": "u1", "iid": "m1", "ts": true}\n')
    cfg = DataConfig(format="generic", interactions=str(tmp_path / "i.jsonl"), columns=COLS)
    with pytest.raises(InputError, match="is a boolean") as info:
        load_catalog(cfg)
    assert (info.value.where, info.value.field) == ("line 1", "ts")


def test_default_title_column_may_be_absent(tmp_path):
    """Only a title column the config names is required; the default one may be missing (no titles)."""
    (tmp_path / "i.csv").write_text("user_id,item_id,timestamp\nu1,m1,1\n")
    (tmp_path / "items.csv").write_text("item_id,genre\nm1,drama\n")
    cfg = DataConfig(
        format="generic", interactions=str(tmp_path / "i.csv"), items=str(tmp_path / "items.csv")
    )
    assert load_catalog(cfg).items["title"].tolist() == [""]
