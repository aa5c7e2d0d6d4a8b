"""The quickstart notebook runs top to bottom (on a tiny budget) so it cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMREC_NB_STEPS", "2")
    monkeypatch.setenv("LLMREC_NB_USERS", "8")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "chosen on validation:" in outputs and "popularity NDCG@10" in outputs
    assert "sasrec NDCG@10" in outputs  # train trained SASRec-CE for the choice, evaluate compares it
    assert any(o.get("output_type") == "display_data" for c in nb.cells for o in c.get("outputs", []))
    assert os.path.exists(tmp_path / "runs" / "notebook" / "run" / "adapter" / "adapter_config.json")
