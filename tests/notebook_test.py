"""The Colab demo runs top to bottom (with a small step count) and reports both runs."""
import os

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_notebook_runs_and_compares_both_runs():
  notebook = nbformat.read(os.path.join(ROOT, "notebooks", "toy_mog_demo.ipynb"), as_version=4)
  params = notebook.cells[1]
  assert params.source.startswith("NUM_STEPS = ")
  params.source = "NUM_STEPS = 20\nNUM_MODES = 25"
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": ROOT}}).execute()
  text = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                 for out in cell.outputs)
  assert "GAN (random batches): modes recovered" in text
  assert "Small-GAN (core-set batches): modes recovered" in text
  images = [out for out in notebook.cells[-1].outputs if "image/png" in out.get("data", {})]
  assert len(images) == 1
