"""Importers: every supported source becomes the same two tables (interactions, items).

Interactions: `user`, `item` (strings), `timestamp` (float; for sources without time, the position
in the user's sequence) and `row` (the 1-based line or record number, used in error messages and
to break timestamp ties in file order). Items: `item`, `title` (may be empty), `text` (extra text,
may be empty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import BUILTIN, PACKAGE_DIR, DataConfig
from llmrec.errors import InputError

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".json"}


@dataclass
class Catalog:
    """What every importer returns."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    source: str


def load_catalog(cfg: DataConfig) -> Catalog:
    """Dispatch on `cfg.format`."""
    if cfg.format == "generic":
        if not cfg.interactions:
            raise InputError("generic format needs 'interactions' (a table file)", field="data.interactions")
        return load_generic(cfg.interactions, cfg.items, cfg)
    if not cfg.path:
        raise InputError(f"format '{cfg.format}' needs 'path'", field="data.path")
    loader = {"movielens": load_movielens, "p5": load_p5, "lcrec": load_lcrec}[cfg.format]
    path = cfg.path
    if path.startswith(BUILTIN):
        path = PACKAGE_DIR / "data" / "builtin" / path[len(BUILTIN) :]
    return loader(Path(path))


# --- text helpers -------------------------------------------------------------------------------


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole file, naming the line of the first undecodable byte."""
    if not path.exists():
        raise InputError("file not found", path=path)
    data = path.read_bytes()
    if not data.strip():
        raise InputError("file is empty", path=path)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"cannot decode byte 0x{data[exc.start]:02x} as {encoding}", path=path, where=f"line {line}"
        ) from exc


def _items_frame(
    ids: list[str], titles: list[str], texts: list[str], path: Path, rows: list[str]
) -> pd.DataFrame:
    items = pd.DataFrame({"item": ids, "title": titles, "text": texts})
    dup = items["item"].duplicated()
    if dup.any():
        i = int(dup.to_numpy().argmax())
        raise InputError(f"duplicate item id '{ids[i]}'", path=path, where=rows[i], field="item")
    return items


def _check_known_items(inter: pd.DataFrame, items: pd.DataFrame, path: Path, where_prefix: str) -> None:
    known = inter["item"].isin(set(items["item"]))
    if not known.all():
        bad = inter.loc[~known].iloc[0]
        raise InputError(
            f"item '{bad['item']}' is not in the items table",
            path=path,
            where=f"{where_prefix} {int(bad['row'])}",
            field="item",
        )


# --- MovieLens-100K -----------------------------------------------------------------------------


def load_movielens(folder: Path) -> Catalog:
    """`u.data` (user TAB item TAB rating TAB unix time) and `u.item` (pipe-separated, Latin-1)."""
    data_path, item_path = folder / "u.data", folder / "u.item"
    users, items_, stamps, rows = [], [], [], []
    for n, line in enumerate(read_text(data_path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise InputError(
                f"expected 4 tab-separated fields, found {len(fields)}", path=data_path, where=f"line {n}"
            )
        try:
            stamps.append(float(int(fields[3])))
        except ValueError as exc:
            raise InputError(
                f"timestamp '{fields[3]}' is not a unix time",
                path=data_path,
                where=f"line {n}",
                field="timestamp",
            ) from exc
        users.append(fields[0])
        items_.append(fields[1])
        rows.append(n)
    inter = pd.DataFrame({"user": users, "item": items_, "timestamp": stamps, "row": rows})

    ids, titles, texts, where = [], [], [], []
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip
    for n, line in enumerate(read_text(item_path, encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(genres):
            raise InputError(
                f"expected {5 + len(genres)} '|'-separated fields, found {len(fields)}",
                path=item_path,
                where=f"line {n}",
            )
        flags = fields[5:]
        ids.append(fields[0])
        titles.append(fields[1].strip())
        texts.append(", ".join(g for g, f in zip(genres, flags, strict=True) if f == "1"))
        where.append(f"line {n}")
    items = _items_frame(ids, titles, texts, item_path, where)
    _check_known_items(inter, items, data_path, "line")
    return Catalog(inter, items, source=str(folder))


# --- P5 / S3-Rec text format --------------------------------------------------------------------


def load_p5(path: Path) -> Catalog:
    """One user a line: `user item item ...` in time order. No titles; attributes if the
    `<stem>_item2attributes.json` file sits beside it."""
    users, items_, stamps, rows = [], [], [], []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise InputError("a line needs a user id and at least one item", path=path, where=f"line {n}")
        for pos, tok in enumerate(tokens[1:]):
            if not tok.isdigit():
                raise InputError(
                    f"item '{tok}' is not an integer id", path=path, where=f"line {n}", field="item"
                )
            users.append(tokens[0])
            items_.append(tok)
            stamps.append(float(pos))
            rows.append(n)
    inter = pd.DataFrame({"user": users, "item": items_, "timestamp": stamps, "row": rows})
    ids = sorted(set(items_), key=int)
    texts = [""] * len(ids)
    attr_path = path.with_name(f"{path.stem}_item2attributes.json")
    if attr_path.exists():
        attrs = _load_json(attr_path)
        texts = ["attributes " + " ".join(str(a) for a in attrs[i]) if i in attrs else "" for i in ids]
    items = pd.DataFrame({"item": ids, "title": [""] * len(ids), "text": texts})
    return Catalog(inter, items, source=str(path))


# --- LC-Rec JSON --------------------------------------------------------------------------------


def _load_json(path: Path) -> dict:
    text = read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}") from exc
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object at the top level", path=path)
    return obj


def load_lcrec(folder: Path) -> Catalog:
    """`<name>.inter.json` ({user: [item, ...]} in time order) and `<name>.item.json`
    ({item: {"title": ..., "description": ..., ...}})."""
    inters = sorted(folder.glob("*.inter.json")) if folder.is_dir() else []
    if len(inters) != 1:
        raise InputError(f"expected exactly one *.inter.json, found {len(inters)}", path=folder)
    inter_path = inters[0]
    item_path = inter_path.with_name(inter_path.name.replace(".inter.json", ".item.json"))
    seqs = _load_json(inter_path)
    users, items_, stamps, rows = [], [], [], []
    for n, (user, seq) in enumerate(seqs.items(), start=1):
        if not isinstance(seq, list) or not seq:
            raise InputError(
                "expected a non-empty list of items", path=inter_path, where=f"record {n} (user {user})"
            )
        for pos, item in enumerate(seq):
            users.append(str(user))
            items_.append(str(item))
            stamps.append(float(pos))
            rows.append(n)
    inter = pd.DataFrame({"user": users, "item": items_, "timestamp": stamps, "row": rows})
    meta = _load_json(item_path)
    ids, titles, texts, where = [], [], [], []
    for n, (item, rec) in enumerate(meta.items(), start=1):
        if not isinstance(rec, dict):
            raise InputError("expected an object", path=item_path, where=f"record {n} (item {item})")
        ids.append(str(item))
        titles.append(str(rec.get("title") or "").strip())
        texts.append(" ".join(str(rec[k]) for k in ("categories", "brand", "description") if rec.get(k)))
        where.append(f"record {n}")
    items = _items_frame(ids, titles, texts, item_path, where)
    _check_known_items(inter, items, inter_path, "record")
    return Catalog(inter, items, source=str(folder))


# --- generic tables -----------------------------------------------------------------------------


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read CSV/TSV/Parquet/JSONL as strings. Returns the frame and how rows are named ("line"/"row").

    Each frame gets a `__row__` column: the 1-based file line (text formats) or row (Parquet).
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported file type '{suffix}' (use {', '.join(sorted(TABLE_SUFFIXES))})", path=path
        )
    if suffix == ".parquet":
        if not path.exists():
            raise InputError("file not found", path=path)
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError(f"cannot read Parquet: {exc}", path=path) from exc
        if frame.empty:
            raise InputError("table has no rows", path=path)
        # text columns compare as strings; list columns (e.g. item vectors) stay lists. A Parquet
        # column has one type, so its first value tells which it is.
        text = [c for c in frame.columns if frame[c].dtype == object and not _holds_lists(frame[c])]
        frame = frame.astype(dict.fromkeys(text, "string"))
        frame["__row__"] = range(1, len(frame) + 1)
        return frame, "row"
    text = read_text(path)
    if suffix in {".jsonl", ".json"}:
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", path=path, where=f"line {n}") from exc
            if not isinstance(rec, dict):
                raise InputError("expected one JSON object per line", path=path, where=f"line {n}")
            rec["__row__"] = n
            records.append(rec)
        return pd.DataFrame.from_records(records), "line"
    sep = "\t" if suffix in {".tsv", ".txt"} else ","
    import io

    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except pd.errors.ParserError as exc:
        raise InputError(f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {exc}", path=path) from exc
    if frame.empty:
        raise InputError("table has a header but no rows", path=path)
    # Line numbers: header is line 1; blank lines are skipped by pandas, so map them explicitly.
    content_lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    frame["__row__"] = content_lines[1 : len(frame) + 1]
    return frame, "line"


def _holds_lists(column: pd.Series) -> bool:
    first = column.dropna().head(1).tolist()
    return bool(first) and isinstance(first[0], list | np.ndarray)


def require_columns(frame: pd.DataFrame, path: Path, wanted: dict[str, str | None]) -> None:
    header = [c for c in frame.columns if c != "__row__"]
    for role, col in wanted.items():
        if col is not None and col not in frame.columns:
            hint = ""
            if len(header) == 1:
                for cand in (";", ",", "\t", "|"):
                    if cand in header[0]:
                        hint = f"; the header is one column '{header[0]}': is the delimiter {cand!r}?"
                        break
            raise InputError(
                f"missing {role} column (columns are {header}){hint}", path=path, where="header", field=col
            )


def _require_values(frame: pd.DataFrame, path: Path, unit: str, cols: list[str]) -> None:
    for col in cols:
        values = frame[col]
        empty = values.isna() | (values.astype("string").str.strip() == "")
        if empty.any():
            n = int(frame.loc[empty, "__row__"].iloc[0])
            raise InputError("empty value", path=path, where=f"{unit} {n}", field=col)


def parse_timestamps(values: pd.Series, rows: pd.Series, path: Path, unit: str, field: str) -> pd.Series:
    """Unix seconds (numbers) or ISO-8601 date strings, to float seconds. The first value decides
    which; the first row that does not follow it is reported."""
    numeric = pd.to_numeric(values, errors="coerce")
    if pd.notna(numeric.iloc[0]):
        parsed, kind = numeric, "a number (unix time) like the first row"
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        kind = "an ISO-8601 date like the first row"
    bad = parsed.isna()
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise InputError(
            f"timestamp '{values.iloc[i]}' is not {kind}",
            path=path,
            where=f"{unit} {int(rows.iloc[i])}",
            field=field,
        )
    if parsed is numeric:
        return numeric.astype(float)
    dates = parsed
    return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def load_generic(interactions: str, items: str | None, cfg: DataConfig) -> Catalog:
    """An interactions table (user, item, timestamp columns named in `cfg.columns`) and an optional
    items table (item id, title, extra text columns)."""
    cols = cfg.columns
    inter_path = Path(interactions)
    frame, unit = read_table(inter_path)
    require_columns(frame, inter_path, {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp})
    _require_values(frame, inter_path, unit, [cols.user, cols.item])
    rows = frame["__row__"]
    if cols.timestamp is not None:
        _require_values(frame, inter_path, unit, [cols.timestamp])
        stamps = parse_timestamps(frame[cols.timestamp], rows, inter_path, unit, cols.timestamp)
    else:
        stamps = pd.Series(range(len(frame)), dtype=float)
    inter = pd.DataFrame(
        {
            "user": frame[cols.user].astype(str).str.strip().to_numpy(),
            "item": frame[cols.item].astype(str).str.strip().to_numpy(),
            "timestamp": stamps.to_numpy(),
            "row": rows.to_numpy(),
        }
    )
    if items is None:
        ids = sorted(inter["item"].unique())
        table = pd.DataFrame({"item": ids, "title": [""] * len(ids), "text": [""] * len(ids)})
        return Catalog(inter, table, source=str(inter_path))

    item_path = Path(items)
    iframe, iunit = read_table(item_path)
    title_col = cols.title if cols.title in iframe.columns else None
    require_columns(iframe, item_path, {"item": cols.item})
    for text_col in cols.text:
        require_columns(iframe, item_path, {"text": text_col})
    _require_values(iframe, item_path, iunit, [cols.item])

    def column(name: str | None) -> list[str]:
        if name is None:
            return [""] * len(iframe)
        return iframe[name].fillna("").astype(str).str.strip().tolist()

    texts = [" ".join(p for p in parts if p) for parts in zip(*(column(c) for c in cols.text), strict=True)]
    table = _items_frame(
        column(cols.item),
        column(title_col),
        texts if cols.text else [""] * len(iframe),
        item_path,
        [f"{iunit} {int(n)}" for n in iframe["__row__"]],
    )
    _check_known_items(inter, table, inter_path, unit)
    return Catalog(inter, table, source=str(inter_path))
