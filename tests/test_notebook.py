"""The Colab notebook runs, headless, top to bottom, at tiny sizes (it cannot rot)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "REPO_URL": "",
    "ROOT": str(ROOT),
    "INSTALL": False,
    "SIZE": 32,
    "ITERATIONS": 2,
    "TRAIN_SIZE": 32,
    "TRAIN_STEPS": 2,
    "WIDTH, DEPTH": (4, 1),
}


@pytest.mark.slow
def test_the_colab_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "notebooks" / "tfnst_colab.ipynb", as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    names = [
        line.split("=")[0].strip()
        for line in parameters.source.splitlines()
        if "=" in line and not line.startswith("#")
    ]
    assert names == list(TINY)  # the notebook's parameters are the ones CI sets
    parameters.source = "\n".join(
        f"{k} = {v!r}" if not isinstance(v, tuple) else f"{k} = {v[0]}, {v[1]}" for k, v in TINY.items()
    )
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "network:" in printed and "stylize_float" in printed
    for name in ("stylized.png", "network.png", "starry.keras"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "served_network" / "1" / "saved_model.pb").exists()
