"""benchmarks/step_cost.py end to end at tiny sizes: the toy path and an image config on generated
images, with the table's rows and the compiled steps' memory ordered as the batches are."""
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import mog_table, step_cost
from configs import toy_mog


def table_rows(out: str) -> dict:
  """Variant name -> its cells, from the markdown table the benchmark prints."""
  rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ")]
  return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[2:]}


def run(monkeypatch, capsys, argv: list[str]) -> dict:
  monkeypatch.setattr(sys, "argv", ["step_cost.py", *argv])
  step_cost.main()
  return table_rows(capsys.readouterr().out)


def test_toy_run_trains_and_samples():
  config = toy_mog.get_config()
  config.mlp.width = 8
  means = jnp.asarray([[0.0, 0.0], [1.0, 1.0]])
  samples = mog_table.train_one(jax.random.PRNGKey(0), means, 2, config, steps=3)
  assert samples.shape == (10_000, 2) and np.isfinite(samples).all()


def test_toy_table(monkeypatch, capsys):
  rows = run(monkeypatch, capsys, ["--config=configs/toy_mog.py", "--steps=2", "--repeats=1",
                                   "--batch=8", "--set=mlp.width=8"])
  assert list(rows) == ["GAN, batch 8", "Small-GAN, batch 8", "GAN, batch 16", "GAN, batch 32"]
  assert rows["GAN, batch 8"][2] == "1.000x"


def test_image_table_on_generated_images(monkeypatch, capsys):
  rows = run(monkeypatch, capsys, [
      "--config=configs/fashion_mnist_dcgan.py", "--data=generated", "--steps=1", "--warmup=1",
      "--batch=4", "--set=dcgan.g_channels=4", "--set=dcgan.d_channels=4", "--set=n_dis=1"])
  assert list(rows) == ["GAN, batch 4", "Small-GAN, batch 4", "GAN, batch 8", "GAN, batch 16"]
  memory = {name: float(cells[5].rstrip("x")) for name, cells in rows.items()}
  times = [float(cells[i]) for cells in rows.values() for i in (0, 1)]
  assert all(t > 0 for t in times)
  # Small-GAN streams 8x the candidates of the plain GAN at its batch, and batches cost memory.
  assert memory["GAN, batch 4"] == 1 < memory["Small-GAN, batch 4"]
  assert memory["GAN, batch 4"] < memory["GAN, batch 8"] < memory["GAN, batch 16"]
