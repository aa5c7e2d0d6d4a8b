"""Safe file output and input: readers never see a half-written file, a crash leaves the old one, and
llmrec never replaces or writes into a folder it did not create.

Every folder llmrec writes as a whole (prepared data, a run, a baseline, a converted model) holds a
marker file `.llmrec` naming its kind. A folder is only replaced or written into when it is missing,
empty, or carries the marker of the same kind: a config that points `prepared_dir` at the folder
holding the user's CSVs gets an error, not an empty folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmrec.errors import InputError

MARK = ".llmrec"
# What folders written before the marker existed hold: taken as ours when every entry is one of these
# and the folder's key file is there (a user's folder holding only a config.yaml is not ours).
LEGACY = {
    "prepared": ({"users.parquet"}, {"users.parquet", "items.parquet", "item_ids.parquet", "item_ids.json",
                                      "tokenizer", "config.yaml", "manifest.json", "examples-train.parquet",
                                      "examples-valid.parquet", "examples-test.parquet"}),
    "run": ({"config.yaml", "tokenizer"}, {"config.yaml", "adapter", "tokenizer", "item_ids.parquet",
                                         "item_ids.json", "items.parquet", "train_log.jsonl", "checkpoint",
                                         "train_summary.json", "metrics-valid.json", "metrics-test.json",
                                         "merged"}),
    "adapter": ({"adapter_config.json"}, {"adapter_config.json", "adapter_model.safetensors", "README.md"}),
    "merged-model": ({"llmrec_merged.json"}, None),
    "tokenizer": ({"tokenizer_config.json", "tokenizer.json"}, None),
}  # fmt: skip


def marked_kind(folder: Path) -> str | None:
    """The kind of llmrec output `folder` holds, or None if llmrec did not write it."""
    mark = folder / MARK
    if mark.is_file():
        return mark.read_text().strip() or None
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for kind, (needed, allowed) in LEGACY.items():
        if names and needed <= names and (allowed is None or names <= allowed):
            return kind
    return None


def check_writable_dir(folder: str | Path, kind: str, field: str | None = None) -> Path:
    """Raise unless llmrec may write `kind` output into `folder`: it is missing, empty, or was
    written by llmrec as the same kind. Checked before any work, so a wrong path fails at once."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"is a file; {kind} output needs a folder", path=folder, field=field)
    if not folder.exists() or not any(folder.iterdir()):
        return folder
    found = marked_kind(folder)
    if found is None:
        raise InputError(
            f"folder is not empty and was not written by llmrec; refusing to write {kind} output into it "
            "(its files could be lost): choose a new or empty folder",
            path=folder,
            field=field,
        )
    if found != kind:
        raise InputError(f"folder holds llmrec {found} output, not {kind}: choose another folder",
                         path=folder, field=field)  # fmt: skip
    return folder


def claim_dir(folder: str | Path, kind: str, field: str | None = None) -> Path:
    """Create (or reuse, see `check_writable_dir`) a folder that llmrec writes into piece by piece."""
    folder = check_writable_dir(folder, kind, field)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MARK).exists():
            (folder / MARK).write_text(kind + "\n")
    except OSError as exc:
        raise InputError(f"cannot create the folder: {exc.strerror}", path=folder, field=field) from exc
    return folder


@contextmanager
def atomic_path(target: str | Path, kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    A file target replaces an existing file (never a folder). A folder target needs `kind`: the
    marker is written into it, and an existing folder is replaced only if `check_writable_dir`
    allows it; the old folder is removed only after the new one is in place.
    """
    target = Path(target)
    if kind is not None:
        check_writable_dir(target, kind)
    elif target.is_dir():
        raise InputError("is a folder; expected a file path", path=target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror}", path=target.parent) from exc
    try:
        yield tmp
        if kind is not None:
            (tmp / MARK).write_text(kind + "\n")
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


@contextmanager
def exclusive(
    lock_file: Path, what: str, advice: str = "wait for it or use another output"
) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the block; a second holder gets a clear error at once,
    naming the process that holds it.

    An OS lock (flock) is released when its process dies, so a killed run never blocks the next."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"{what} is in progress in {holder}; {advice}", path=lock_file) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


COMMITTED = "COMMITTED"


@contextmanager
def staged_files(folder: Path, staging: str, first: tuple[str, ...] = ()) -> Iterator[Path]:
    """Replace several files and folders of `folder` as one change: the block writes the new
    versions into the yielded staging folder (`folder/staging`), under the names they take in
    `folder`; when it succeeds a commit marker is written and each is renamed into place. A process
    killed before the marker leaves the old versions (the staging folder is dropped by
    `settle_staged`); killed after it, `settle_staged` finishes the renames. Names in `first` are
    renamed first, in that order (what a reader that looks mid-change needs before the rest). The
    caller holds the folder's writer lock."""
    stage = folder / staging
    shutil.rmtree(stage, ignore_errors=True)  # an uncommitted change that died: never half-applied
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    names = sorted(p.name for p in stage.iterdir())
    order = [n for n in first if n in names] + [n for n in names if n not in first]
    with atomic_path(stage / COMMITTED) as tmp:  # the change is decided once this name exists
        tmp.write_text("\n".join(order) + "\n")
    settle_staged(folder, staging)


def settle_staged(folder: Path, staging: str) -> bool:
    """Finish or drop a change `staged_files` left: committed, its remaining entries are renamed into
    place (in the marker's order); not committed, the staging folder is removed. True if
    there was one. Every step can be repeated, so a kill during settling is settled next time."""
    stage = folder / staging
    if not stage.exists():
        return False
    marker = stage / COMMITTED
    if marker.exists():
        for name in marker.read_text().split():
            new, target, old = stage / name, folder / name, folder / f".{name}.old"
            if new.exists():  # else renamed into place already
                if new.is_dir() and target.exists():
                    shutil.rmtree(old, ignore_errors=True)
                    os.replace(target, old)
                os.replace(new, target)
            shutil.rmtree(old, ignore_errors=True)  # also what a kill right after a rename left
    shutil.rmtree(stage, ignore_errors=True)
    return True


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a whole text file (a UTF-8 byte-order mark is dropped), naming the line of the first
    undecodable byte."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("is a folder; expected a file", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from exc
    return decode_text(data, path, encoding)


def decode_text(data: bytes, path: str | Path, encoding: str = "utf-8", of: str = "") -> str:
    """A file's bytes as text (a UTF-8 byte-order mark dropped); an empty file or an undecodable byte
    is an error naming the file and the line. `of`: what the bytes are, e.g. " (after decompression)"."""
    if not data.strip():
        raise InputError(f"file is empty{of}", path=path)
    try:
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"cannot decode byte 0x{data[exc.start]:02x} as {encoding}", path=path, where=f"line {line}{of}"
        ) from exc


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
