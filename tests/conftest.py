from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub: fail fast instead of retrying

from tiny import save_tiny_backbone


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="session")
def tiny_vllm_backbone(tmp_path_factory) -> Path:
    """Like tiny_backbone, with heads wide enough for vLLM's CPU attention kernels."""
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny-llm-vllm"), head_dim=32)


ATOMIC_PROMPTS = {"prompts": {"objective": "every_item", "template": "item_list.j2", "include_titles": False}}


@pytest.fixture(scope="session")
def atomic_run(tmp_path_factory, tiny_backbone) -> Path:
    """A tiny trained run of the default recipe (atomic ids, item lists) on the synthetic CSVs; read
    it, or copy it before changing it."""
    from test_pipeline import runner, write_config

    from llmrec.cli import app

    root = tmp_path_factory.mktemp("atomic-run")
    config = write_config(root, tiny_backbone, "atomic", ATOMIC_PROMPTS, max_steps=4, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return root / "run"


def require_vllm():
    """vLLM tests run wherever vllm(-cpu) is installed; CI installs it, so there they never skip."""
    if os.environ.get("CI"):
        import vllm  # noqa: F401
    else:
        pytest.importorskip("vllm")


def write_synthetic_csvs(
    folder: Path, n_users: int = 40, n_items: int = 30, seed: int = 0
) -> tuple[Path, Path]:
    """Interactions with a learnable pattern (users walk the catalogue in steps of 1) and titles."""
    rng = random.Random(seed)
    lines = ["uid,iid,ts"]
    for u in range(n_users):
        start = rng.randrange(n_items)
        for t in range(rng.randrange(5, 9)):
            lines.append(f"u{u},m{(start + t) % n_items},{1_600_000_000 + 60 * t}")
    inter = folder / "interactions.csv"
    inter.write_text("\n".join(lines) + "\n")
    items = folder / "items.csv"
    genres = ["comedy", "drama", "action"]
    items.write_text("iid,name,genre\n" + "".join(f"m{i},Film {i},{genres[i % 3]}\n" for i in range(n_items)))
    return inter, items
