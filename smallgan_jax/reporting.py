"""Where a run's metrics go: the log, and TensorBoard event files in the workdir.

clu's writers (`clu.metric_writers.create_default_writer`) do this, but importing them imports
TensorFlow: about 3 s of every process start on this project's CPU (most of a short run's start,
and of a test suite that starts many), and the GPU images the benchmarks run on have no
TensorFlow or clu. So a local workdir gets its event file from `EventFileWriter`, written with
TensorBoard's own protos and record framing as TensorFlow's summary writer writes it (TF2 tensor
summaries of the `scalars` and `images` plugins: TensorBoard and
`tf.compat.v1.train.summary_iterator` read it alike); a remote workdir (gs://), whose files only
TensorFlow's file system writes, keeps clu's writer. Both log every write as clu's
`LoggingWriter` does ("[step] name=value, ..."). Without the `tensorboard` package, scalars go
to `metrics.jsonl` in the workdir instead.
"""
import io
import json
import os
import socket
import time
from typing import Any, Mapping, Protocol

from absl import logging
import numpy as np


class Writer(Protocol):
  """The part of clu's `MetricWriter` interface that training and evaluation use."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None: ...

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None: ...

  def flush(self) -> None: ...

  def close(self) -> None: ...


class LogWriter:
  """Every write as a log line, in the format of clu's `LoggingWriter`."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    values = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
              for k, v in sorted(scalars.items())]
    logging.info("[%d] %s", step, ", ".join(values))

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    logging.info("[%d] Got images: %s.", step, {k: v.shape for k, v in images.items()})

  def flush(self) -> None:
    logging.flush()

  def close(self) -> None:
    self.flush()


def _png(image: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top  # Only when images are written.
  pixels = np.asarray(image)
  if pixels.dtype != np.uint8:  # Floats in [0, 1], as tf.summary.image takes them.
    pixels = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
  return buffer.getvalue()


class EventFileWriter:
  """Scalars and images in a TensorBoard event file of `logdir` (a local directory)."""

  def __init__(self, logdir: str):
    # pylint: disable=g-import-not-at-top  # tensorboard is optional (`create_writer`).
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.image import metadata as image_metadata
    from tensorboard.plugins.scalar import metadata as scalar_metadata
    from tensorboard.summary.writer.record_writer import RecordWriter
    from tensorboard.util import tensor_util
    # pylint: enable=g-import-not-at-top
    self._event, self._summary, self._tensor = event_pb2.Event, summary_pb2, tensor_util
    self._metadata = {"scalars": scalar_metadata.create_summary_metadata("", ""),
                      "images": image_metadata.create_summary_metadata("", "")}
    self._metadata["scalars"].data_class = summary_pb2.DATA_CLASS_SCALAR
    self._metadata["images"].data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    os.makedirs(logdir, exist_ok=True)
    self.path = os.path.join(logdir, f"events.out.tfevents.{time.time():.6f}."
                             f"{socket.gethostname()}.{os.getpid()}.v2")
    self._file = open(self.path, "ab")
    self._records = RecordWriter(self._file)
    self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write(self, event: Any) -> None:
    self._records.write(event.SerializeToString())
    self._file.flush()

  def _write_values(self, step: int, plugin: str, tensors: Mapping[str, Any]) -> None:
    values = [self._summary.Summary.Value(tag=tag, tensor=tensor, metadata=self._metadata[plugin])
              for tag, tensor in tensors.items()]
    self._write(self._event(wall_time=time.time(), step=step,
                            summary=self._summary.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    self._write_values(step, "scalars", {
        tag: self._tensor.make_tensor_proto(np.float32(value)) for tag, value in scalars.items()})

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """`images[tag]`: (k, H, W, C) uint8 (or floats in [0, 1]); as tf.summary.image, a tensor of
    the width, the height and k PNGs."""
    tensors = {}
    for tag, batch in images.items():
      batch = np.asarray(batch)
      header = [str(batch.shape[2]).encode(), str(batch.shape[1]).encode()]
      tensors[tag] = self._tensor.make_tensor_proto(
          np.array(header + [_png(image) for image in batch], dtype=object))
    self._write_values(step, "images", tensors)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class JsonLinesWriter:
  """Scalars as lines of {"step", name: value} in `path` (where `tensorboard` is absent)."""

  def __init__(self, path: str):
    self._file = open(path, "a")

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    self._file.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")
    self._file.flush()

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    del step, images  # The workdir's PNGs hold them.

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class MultiWriter:
  """Writes to each of `writers`."""

  def __init__(self, writers: list[Writer]):
    self.writers = writers

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for writer in self.writers:
      writer.write_scalars(step, scalars)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    for writer in self.writers:
      writer.write_images(step, images)

  def flush(self) -> None:
    for writer in self.writers:
      writer.flush()

  def close(self) -> None:
    for writer in self.writers:
      writer.close()


def create_writer(workdir: str, just_logging: bool = False) -> Writer:
  """The log, and (unless `just_logging`: processes other than the first) the workdir's event
  file; clu's writer for a remote workdir."""
  if just_logging:
    return LogWriter()
  if "://" in workdir:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top  # Imports TensorFlow.
    return metric_writers.create_default_writer(workdir)
  try:
    events = EventFileWriter(workdir)
  except ImportError:
    logging.warning("No tensorboard package: the run's scalars go to %s/metrics.jsonl", workdir)
    events = JsonLinesWriter(os.path.join(workdir, "metrics.jsonl"))
  return MultiWriter([LogWriter(), events])
