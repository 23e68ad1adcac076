"""Tests for smallgan_jax.reporting: the event file TensorFlow's reader reads back (scalars and
PNG images), clu's log format, the JSON-lines fallback, and no TensorFlow import on the way."""
import builtins
import io
import json
import logging
import subprocess
import sys

import numpy as np
from PIL import Image

from smallgan_jax import reporting
from tests.main_test import ROOT


def read_events(path):
  """(step, tag, plugin, value) of every summary value; images as (width, height, [arrays])."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # The independent reader.
  rows = []
  for event in tf.compat.v1.train.summary_iterator(path):
    for value in event.summary.value:
      tensor = tf.make_ndarray(value.tensor)
      if tensor.dtype == object:
        width, height, *pngs = tensor
        tensor = (int(width), int(height), [np.asarray(Image.open(io.BytesIO(p))) for p in pngs])
      else:
        tensor = float(tensor)
      rows.append((event.step, value.tag, value.metadata.plugin_data.plugin_name, tensor))
  return rows


def test_event_file_holds_what_tensorboard_reads_back(tmp_path):
  writer = reporting.create_writer(str(tmp_path))
  rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
  grey = np.random.default_rng(1).integers(0, 256, (1, 4, 6, 1), dtype=np.uint8)
  writer.write_scalars(3, {"train/loss": 0.25, "eval/fid": 12})
  writer.write_images(4, {"samples": rgb, "grey": grey})
  writer.close()
  (path,) = tmp_path.glob("events.out.tfevents.*")
  rows = read_events(str(path))
  assert [r[:3] for r in rows] == [(3, "train/loss", "scalars"), (3, "eval/fid", "scalars"),
                                   (4, "samples", "images"), (4, "grey", "images")]
  assert rows[0][3] == 0.25 and rows[1][3] == 12.0
  width, height, pngs = rows[2][3]
  assert (width, height) == (7, 5)
  np.testing.assert_array_equal(np.stack(pngs), rgb)
  np.testing.assert_array_equal(rows[3][3][2][0], grey[0, ..., 0])


def test_the_log_reads_as_clus(caplog):
  with caplog.at_level(logging.INFO):
    reporting.LogWriter().write_scalars(7, {"b": 0.123456789, "a": 3})
  assert caplog.records[-1].getMessage() == "[7] a=3, b=0.123457"


def test_without_tensorboard_scalars_go_to_json_lines(tmp_path, monkeypatch):
  real_import = builtins.__import__

  def no_tensorboard(name, *args, **kwargs):
    if name.startswith("tensorboard"):
      raise ImportError(f"No module named {name!r}")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_tensorboard)
  writer = reporting.create_writer(str(tmp_path))
  writer.write_scalars(2, {"train/loss": 0.5})
  writer.write_images(2, {"samples": np.zeros((1, 2, 2, 3), np.uint8)})
  writer.close()
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line) for line in lines] == [{"step": 2, "train/loss": 0.5}]
  assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_other_processes_only_log(tmp_path):
  writer = reporting.create_writer(str(tmp_path), just_logging=True)
  writer.write_scalars(1, {"x": 1.0})
  assert isinstance(writer, reporting.LogWriter) and not list(tmp_path.iterdir())


def test_training_and_its_writer_import_no_tensorflow_clu_or_sklearn(tmp_path):
  """What every process start pays for: the train module and a written event file."""
  code = (f"import sys; from smallgan_jax import reporting, train; "
          f"w = reporting.create_writer({str(tmp_path)!r}); w.write_scalars(1, {{'x': 1.0}}); "
          "print(sorted(m for m in ('tensorflow', 'clu', 'sklearn') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, check=True)
  assert out.stdout.strip() == "[]"
