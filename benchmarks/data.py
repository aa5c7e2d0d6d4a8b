"""The benchmark data sets: `prepare` finds a local copy (`--from DIR`, $LLMREC_BENCHMARK_DATA, or
../shared/datasets), checks every file against datasets.yaml's sha256, and links it under
runs/benchmarks/data/NAME; `data_section` gives the importer settings pointing there. Nothing is
downloaded: a missing copy is an error that names the public source. A data set `derived_from` another
is made from it: ml100k-notext by dropping text, the `-1k` sets as a seeded sample of users
(`sample_users`)."""

from __future__ import annotations

import csv
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, WORK

REGISTRY = Path(__file__).with_name("datasets.yaml")
PREPARED = WORK / "data"


def datasets() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(REGISTRY.read_text())


def spec(name: str) -> dict[str, Any]:
    known = datasets()
    if name not in known:
        raise SystemExit(f"unknown data set {name!r}: {', '.join(known)} ({REGISTRY.relative_to(ROOT)})")
    return known[name]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidates(folder: str, source: Path | None) -> list[Path]:
    roots = [source] if source else []
    if env := os.environ.get("LLMREC_BENCHMARK_DATA"):
        roots.append(Path(env))
    roots.append(ROOT.parent / "shared" / "datasets")
    # DIR may be the data set's own folder or the folder holding it
    return [p for r in roots for p in (r, r / folder)]


def prepare(name: str, source: Path | None = None) -> Path:
    """runs/benchmarks/data/NAME with the data set's files checked; returns that folder."""
    entry = spec(name)
    target = PREPARED / name
    if "derived_from" in entry:
        origin = prepare(entry["derived_from"], source)
        if "sample" in entry:
            sample_users(origin, target, **entry["sample"])
        else:
            _derive(name, origin, target)
        return target
    files = entry["files"]
    found = next(
        (c for c in _candidates(entry["folder"], source) if all((c / f).is_file() for f in files)), None
    )
    if found is None:
        raise SystemExit(
            f"{name}: no local copy with {', '.join(files)} (looked in --from, $LLMREC_BENCHMARK_DATA and "
            f"../shared/datasets, also in a '{entry['folder']}' folder under each). Source: {entry['source']}"
        )
    for file, expected in files.items():
        if (got := sha256(found / file)) != expected:
            raise SystemExit(f"{found / file}: sha256 {got}, datasets.yaml says {expected} for {name}")
        link = target / file
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((found / file).resolve())
    print(f"{name}: {len(files)} files checked, {target.relative_to(ROOT)} -> {found}", flush=True)
    return target


def _derive(name: str, origin: Path, target: Path) -> None:
    """ml100k-notext: u.data as a CSV (ratings dropped) and an items table of bare ids, in ML-100K's
    item order, so its split is ML-100K's to the item index."""
    if name != "ml100k-notext":
        raise SystemExit(f"{name}: no derivation known")
    target.mkdir(parents=True, exist_ok=True)
    with (origin / "u.data").open() as src, (target / "interactions.csv").open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["user_id", "item_id", "timestamp"])
        for line in src:
            user, item, _rating, when = line.split("\t")
            out.writerow([user, item, when.strip()])
    items = (origin / "u.item").read_text(encoding="latin-1").splitlines()
    (target / "items.csv").write_text("item_id\n" + "".join(line.split("|")[0] + "\n" for line in items))


def sample_users(origin: Path, target: Path, users: int, seed: int, share: float = 1.0) -> Path:
    """A seeded sample of `users` users of the generic data set in `origin` (user, item columns): all
    their interactions, and the items they touched; with `share` < 1, the interactions of only that
    share of them (the same items table). Large catalogues sized to what a 2-core CPU trains in
    minutes; the same seed gives the same users. A sample already in `target` is kept: items.csv is
    written last, so its presence means the sample is whole."""
    if (target / "items.csv").exists():
        return target
    import pandas as pd

    inter = pd.read_csv(origin / "interactions.csv", dtype={"user": str, "item": str})
    chosen = random.Random(seed).sample(sorted(inter["user"].unique()), users)
    inter = inter[inter["user"].isin(set(chosen))]
    items = pd.read_csv(origin / "items.csv", dtype={"item": str})
    items = items[items["item"].isin(set(inter["item"]))]
    if share < 1:
        kept = set(random.Random(seed + 1).sample(sorted(chosen), round(share * users)))
        inter = inter[inter["user"].isin(kept)]
    target.mkdir(parents=True, exist_ok=True)
    inter.to_csv(target / "interactions.csv", index=False)
    items.to_csv(target / "items.csv", index=False)
    return target


def data_section(name: str) -> dict[str, Any]:
    """The config's `data` section for a prepared data set."""
    folder = str(PREPARED / name)
    return _fill(spec(name)["data"], folder)


def provenance(name: str) -> dict[str, Any]:
    """What a result records about its data: the source and the checksums it was checked against."""
    entry = spec(name)
    if "derived_from" in entry:
        return {"name": name, "derived_from": provenance(entry["derived_from"])} | (
            {"sample": entry["sample"]} if "sample" in entry else {}
        )
    return {"name": name, "source": entry["source"], "sha256": entry["files"]}


def _fill(node: Any, folder: str) -> Any:
    if isinstance(node, str):
        return node.replace("{dir}", folder)
    if isinstance(node, dict):
        return {k: _fill(v, folder) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, folder) for v in node]
    return node
