"""The Colab image demo runs top to bottom on a tiny idx dataset (4 steps) and reports both runs."""
import math
import os
import re

import nbformat
from nbclient import NotebookClient
import numpy as np

from tests.images_test import write_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FID_LINE = re.compile(r"^(Small-GAN|GAN): classifier FID at step (\d+): (\S+)$", re.MULTILINE)


def tiny_parameters(tmp_path) -> str:
  """4 steps of a tiny DCGAN on 64 noise images, embedded by their pixels, evaluated at 2 and 4.
  The classifier FID stays on: its classifier trains on the 64 images in seconds."""
  rng = np.random.default_rng(0)
  write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), rng.integers(0, 256, (64, 28, 28)))
  write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), rng.integers(0, 10, 64))
  data = {"source": "idx", "name": "tiny", "idx_dir": str(tmp_path), "resolution": 28,
          "channels": 1, "num_threads": 2}
  overrides = {"coreset.embedding": "pixels", "coreset.cache_dir": str(tmp_path / "cache"),
               "dcgan.g_channels": 8, "dcgan.d_channels": 8, "z_dim": 8, "batch_size": 8,
               "g_batch_size": 8, "eval_num_samples": 64}
  return (f"NUM_STEPS = 4\nEVAL_EVERY = 2\nDATA = {data!r}\nOVERRIDES = {overrides!r}\n"
          f"WORKDIR = {str(tmp_path / 'runs')!r}")


def test_image_demo_notebook_plots_both_runs_fid_and_shows_their_samples(tmp_path):
  notebook = nbformat.read(os.path.join(ROOT, "notebooks", "image_gan_demo.ipynb"), as_version=4)
  assert all(not cell.get("outputs") for cell in notebook.cells), "commit the notebook cleared"
  params, = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
  assert params.source.startswith("NUM_STEPS = ")
  params.source = tiny_parameters(tmp_path)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": ROOT}}).execute()

  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  outputs = [out for cell in code for out in cell.outputs]
  assert not [out for out in outputs if out.output_type == "error"]
  text = "".join(out.get("text", "") for out in outputs)
  lines = FID_LINE.findall(text)
  assert sorted(name for name, _, _ in lines) == ["GAN", "Small-GAN"], text[-3000:]
  for name, step, value in lines:
    assert int(step) == 4 and math.isfinite(float(value)), (name, step, value)

  def images(cell):
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)

  plot_cell, = [cell for cell in code if FID_LINE.search(
      "".join(out.get("text", "") for out in cell.outputs))]
  assert images(plot_cell) == 1  # The two FID curves in one plot.
  # Each run's last sample grid and the Small-GAN run's core-set picks.
  assert sum(images(cell) for cell in code) == 1 + 3
  assert sorted(os.listdir(tmp_path / "runs")) == ["gan", "smallgan"]
