"""Importers: every supported source becomes the same two tables (interactions, items).

Interactions: `user`, `item` (strings), `timestamp` (float; for sources without time, the position
in the user's sequence) and `row` (the 1-based line or record number, used in error messages and
to break timestamp ties in file order). Items: `item`, `title` (may be empty), `text` (extra text,
may be empty). `Catalog.seconds_per_unit` says whether the timestamps are times (seconds per unit:
1 for unix seconds and dates, 1e-3 for milliseconds, ...) or only an order (None: positions, file
order, or numbers too small to be unix times).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.config import BUILTIN, PACKAGE_DIR, Columns, DataConfig, SourceConfig
from llmrec.errors import InputError
from llmrec.io import decode_text, read_text

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".json"}


@dataclass
class Catalog:
    """What every importer returns."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    source: str
    seconds_per_unit: float | None = None  # None: the timestamps only order each user's sequence


def load_catalog(cfg: DataConfig) -> Catalog:
    """Dispatch on `cfg.format`; with `cfg.sources`, every source's catalogue under its domain name
    (`merge_domains`)."""
    if cfg.sources:
        sources = enumerate(cfg.sources)
        return merge_domains([(s.domain, load_source(s, f"data.sources.{n}.")) for n, s in sources])
    return load_source(cfg)


def load_source(cfg: DataConfig | SourceConfig, field: str = "data.") -> Catalog:
    """One source's catalogue; `field` prefixes the config keys named in its errors."""
    if cfg.format == "generic":
        if not cfg.interactions:
            raise InputError("generic format needs 'interactions' (a table file)",
                             field=f"{field}interactions")  # fmt: skip
        return load_generic(cfg.interactions, cfg.items, cfg)
    if not cfg.path:
        raise InputError(f"format '{cfg.format}' needs 'path'", field=f"{field}path")
    loader = {"movielens": load_movielens, "p5": load_p5, "lcrec": load_lcrec}[cfg.format]
    path = cfg.path
    if path.startswith(BUILTIN):
        path = PACKAGE_DIR / "data" / "builtin" / path[len(BUILTIN) :]
    return loader(Path(path))


def merge_domains(catalogs: list[tuple[str, Catalog]]) -> Catalog:
    """One catalogue over several domains: each source's users and items become `domain:id` (the
    same id in two sources is two users, two items), and both tables get a `domain` column. Times
    stay times (in seconds) when every source has them, else they only order each user's items."""
    timed = all(c.seconds_per_unit is not None for _, c in catalogs)
    inters, items = [], []
    for domain, catalog in catalogs:
        inter = catalog.interactions.copy()
        inter["user"] = domain + ":" + inter["user"]
        inter["item"] = domain + ":" + inter["item"]
        if timed:
            inter["timestamp"] = inter["timestamp"] * catalog.seconds_per_unit
        inter["domain"] = domain
        table = catalog.items.copy()
        table["item"] = domain + ":" + table["item"]
        table["domain"] = domain
        inters.append(inter)
        items.append(table)
    source = ", ".join(f"{domain}={c.source}" for domain, c in catalogs)
    return Catalog(pd.concat(inters, ignore_index=True), pd.concat(items, ignore_index=True), source=source,
                   seconds_per_unit=1.0 if timed else None)  # fmt: skip


# --- text helpers -------------------------------------------------------------------------------


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
    return Catalog(inter, items, source=str(folder), seconds_per_unit=1.0)


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


COMPRESSIONS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}


def _table_suffix(path: Path) -> tuple[str, str | None]:
    """(table type, compression) from a name such as `inter.csv.gz`."""
    suffixes = [x.lower() for x in path.suffixes[-2:]]
    if suffixes and (suffixes[-1] in COMPRESSIONS or suffixes[-1] == ".zip"):
        return (suffixes[0] if len(suffixes) == 2 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def _decompressed_text(path: Path, compression: str) -> str:
    if not path.is_file():
        raise InputError("file not found", path=path)
    try:
        if compression == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    raise InputError(
                        f"a zip archive must hold exactly one file, found {len(names)}", path=path
                    )
                data = archive.read(names[0])
        else:
            data = COMPRESSIONS[compression](path.read_bytes())
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise InputError(f"cannot decompress ({compression[1:]}): {exc}", path=path) from exc
    return decode_text(data, path, of=" (after decompression)")


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read CSV/TSV/Parquet/JSONL/JSON (optionally .gz/.bz2/.xz/.zip compressed) with text as strings.
    Returns the frame and how rows are named ("line", "record" or "row").

    Each frame gets a `__row__` column: the 1-based file line where the row starts (text formats; a
    quoted field may span lines), the record number (a JSON array) or the row (Parquet). A CSV row
    with more or fewer fields than the header is an error: pandas would shift the columns silently.
    """
    path = Path(path)
    suffix, compression = _table_suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unsupported file type '{suffix}' (use {', '.join(sorted(TABLE_SUFFIXES))}, optionally "
            "compressed: .gz, .bz2, .xz, .zip)",
            path=path,
        )
    if suffix == ".parquet":
        if compression:
            raise InputError("Parquet is compressed inside the file; do not compress it again", path=path)
        return _read_parquet(path), "row"
    text = _decompressed_text(path, compression) if compression else read_text(path)
    if suffix in {".jsonl", ".json"}:
        return _read_json_records(text, path)
    return _read_delimited(text, path, "\t" if suffix in {".tsv", ".txt"} else ","), "line"


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
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
    return frame


def _read_json_records(text: str, path: Path) -> tuple[pd.DataFrame, str]:
    """JSON lines, or one JSON array of objects (records are then numbered, not lines)."""
    records = []
    if text.lstrip().startswith("["):
        try:
            array = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}") from exc
        for n, rec in enumerate(array, start=1):
            if not isinstance(rec, dict):
                raise InputError("expected a JSON object", path=path, where=f"record {n}")
            records.append({**rec, "__row__": n})
        unit = "record"
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", path=path, where=f"line {n}") from exc
            if not isinstance(rec, dict):
                raise InputError("expected one JSON object per line", path=path, where=f"line {n}")
            records.append({**rec, "__row__": n})
        unit = "line"
    if not records:
        raise InputError("table has no rows", path=path)
    return pd.DataFrame.from_records(records), unit


def _read_delimited(text: str, path: Path, sep: str) -> pd.DataFrame:
    kind = "TSV" if sep == "\t" else "CSV"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    header: list[str] | None = None
    rows, lines = [], []
    consumed = 0  # physical lines read before the current row: the row starts on the next one
    try:
        for fields in reader:
            start, consumed = consumed + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):  # a blank line
                continue
            if header is None:
                header = [f.strip() for f in fields]
                twice = sorted({c for c in header if header.count(c) > 1})
                if twice:
                    raise InputError(f"column {twice[0]!r} appears twice in the header", path=path,
                                     where=f"line {start}", field=twice[0])  # fmt: skip
                continue
            if len(fields) != len(header):
                cause = (
                    "a delimiter inside an unquoted value, or a column missing from the header?"
                    if len(fields) > len(header)
                    else "a missing value or delimiter?"
                )
                raise InputError(f"{len(fields)} fields, but the header has {len(header)} ({cause})",
                                 path=path, where=f"line {start}")  # fmt: skip
            rows.append(fields)
            lines.append(start)
    except csv.Error as exc:
        raise InputError(
            f"cannot parse as {kind}: {exc}", path=path, where=f"line {reader.line_num}"
        ) from exc
    if header is None or not rows:
        raise InputError("table has a header but no rows", path=path)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame["__row__"] = lines
    return frame


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


# Unix times by unit, by magnitude: seconds are 1e8-1e11 (1973-5138), milliseconds 1e11-1e14, ...
_UNITS = [(1e8, "seconds"), (1e11, "milliseconds"), (1e14, "microseconds"), (1e17, "nanoseconds")]
_SECONDS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6, "nanoseconds": 1e-9}


def seconds_per_unit(stamps: pd.Series) -> float | None:
    """Seconds per unit of parsed timestamps (`parse_timestamps` checked they share one unit), or
    None when they are too small to be unix times (positions, ranks): such data has an order only."""
    unit = _unit(float(stamps.iloc[0])) if len(stamps) else None
    return _SECONDS.get(unit) if unit else None


def _unit(value: float) -> str | None:
    name = None
    for floor, unit in _UNITS:
        if abs(value) >= floor:
            name = unit
    return name


def parse_timestamps(values: pd.Series, rows: pd.Series, path: Path, unit: str, field: str) -> pd.Series:
    """Unix times (numbers) or ISO-8601 date strings, to float seconds. The first value decides
    which; the first row that does not follow it is reported. Numbers must be finite and in one unit:
    a millisecond time among second times would reorder that user's sequence silently."""

    def fail(i: int, why: str) -> InputError:
        return InputError(f"timestamp {values.iloc[i]!r} {why}", path=path,
                          where=f"{unit} {int(rows.iloc[i])}", field=field)  # fmt: skip

    booleans = values.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy()
    if booleans.any():
        raise fail(int(booleans.argmax()), "is a boolean, not a time")
    numeric = pd.to_numeric(values, errors="coerce")
    if pd.notna(numeric.iloc[0]):
        missing = numeric.isna().to_numpy()
        if missing.any():
            raise fail(int(missing.argmax()), "is not a number (unix time) like the first row")
        infinite = ~np.isfinite(numeric.to_numpy(dtype=float))
        if infinite.any():
            raise fail(int(infinite.argmax()), "is not a finite number")
        units = numeric.map(_unit)
        counts = units.value_counts()
        if len(counts) > 1:
            usual = counts.index[0]
            odd = int((units.notna() & (units != usual)).to_numpy().argmax())
            raise fail(odd, f"looks like {units.iloc[odd]} while most timestamps are {usual} of unix time: "
                            "use one unit for the whole column")  # fmt: skip
        return numeric.astype(float)
    seconds = np.empty(len(values))
    for i, value in enumerate(values):
        try:
            stamp = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise fail(i, "is not an ISO-8601 date like the first row") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        seconds[i] = (stamp - _EPOCH).total_seconds()
    return pd.Series(seconds, index=values.index)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def load_generic(interactions: str, items: str | None, cfg: DataConfig | SourceConfig) -> Catalog:
    """An interactions table (user, item, timestamp columns named in `cfg.columns`) and an optional
    items table (item id, title, extra text columns)."""
    cols = cfg.columns
    inter_path = Path(interactions)
    frame, unit = read_table(inter_path)
    require_columns(frame, inter_path, {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp})
    _require_values(frame, inter_path, unit, [cols.user, cols.item])
    rows = frame["__row__"]
    scale = None
    if cols.timestamp is not None:
        _require_values(frame, inter_path, unit, [cols.timestamp])
        stamps = parse_timestamps(frame[cols.timestamp], rows, inter_path, unit, cols.timestamp)
        scale = seconds_per_unit(stamps)
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
        return Catalog(inter, table, source=str(inter_path), seconds_per_unit=scale)

    table = read_items_table(Path(items), cols)
    _check_known_items(inter, table.drop(columns="where"), inter_path, unit)
    return Catalog(inter, table.drop(columns="where"), source=str(inter_path), seconds_per_unit=scale)


def read_id_list(path: Path, column: str) -> list[str]:
    """Ids, in file order: a CSV/TSV/Parquet/JSONL table's `column`, or a text file of one id a line
    (blank lines skipped)."""
    if path.suffix.lower() in {".csv", ".tsv", ".parquet", ".jsonl", ".json"}:
        frame, _ = read_table(path)
        if column not in frame.columns:
            raise InputError(f"needs a '{column}' column", path=path, where="header", field=column)
        return frame[column].astype(str).str.strip().tolist()
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_items_table(item_path: Path, cols: Columns) -> pd.DataFrame:
    """An items table (the id, title and extra text columns named in `cols`) as `item`, `title`,
    `text` and `where` (the line/record each row came from); a repeated id is an error."""
    iframe, iunit = read_table(item_path)
    # the default title column may be absent (a catalogue without titles); one the config names may not
    title_named = "title" in cols.model_fields_set
    title_col = cols.title if cols.title in iframe.columns or title_named else None
    require_columns(iframe, item_path, {"item": cols.item, "title": title_col})
    for text_col in cols.text:
        require_columns(iframe, item_path, {"text": text_col})
    _require_values(iframe, item_path, iunit, [cols.item])

    def column(name: str | None) -> list[str]:
        if name is None:
            return [""] * len(iframe)
        return iframe[name].fillna("").astype(str).str.strip().tolist()

    texts = [" ".join(p for p in parts if p) for parts in zip(*(column(c) for c in cols.text), strict=True)]
    where = [f"{iunit} {int(n)}" for n in iframe["__row__"]]
    table = _items_frame(column(cols.item), column(title_col), texts if cols.text else [""] * len(iframe),
                         item_path, where)  # fmt: skip
    return table.assign(where=where)
