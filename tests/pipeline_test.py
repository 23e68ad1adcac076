"""The candidate stream (data/pipeline.py): what each device draws, resumes, processes, threads."""
import sys
import threading

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import pytest

from benchmarks import input_pipeline
from smallgan_jax.data import images, pipeline
from tests.train_test import small_config


class NumberedSource(images.ArraySource):
  """N 2x2 RGB images that spell their own index: channel 0 = index % 256, 1 = index // 256."""

  def __init__(self, size=1000):
    index = np.arange(size)
    pixels = np.stack([index % 256, index // 256, np.zeros_like(index)], axis=-1)
    super().__init__("numbered/train", np.broadcast_to(
        pixels[:, None, None, :].astype(np.uint8), (size, 2, 2, 3)), None)


def spelled(images_):
  return images_[..., 0, 0, 0].astype(np.int64) + 256 * images_[..., 0, 0, 1].astype(np.int64)


def stream(device_indices, start_step=1, **kwargs):
  """A stream of NumberedSource's images: 2 sets of 16 a step (`kwargs` override)."""
  kwargs = {"seed": 3, "n_dis": 2, "n": 16, "steps_in_flight": 2, "num_threads": 2, **kwargs}
  return pipeline.CandidateStream(NumberedSource(), device_indices=device_indices,
                                  start_step=start_step, **kwargs)


def take(candidate_stream, steps):
  with candidate_stream:
    return [candidate_stream.next() for _ in range(steps)]


def test_candidate_indices_are_a_pure_function_of_their_key():
  x = pipeline.candidate_indices(seed=0, step=5, device_index=2, num_sets=3, n=50,
                                 dataset_size=60)
  assert x.shape == (3, 50) and x.dtype == np.int64
  assert x.min() >= 0 and x.max() < 60
  assert all(len(set(row)) == 50 for row in x)  # No image twice in one set.
  np.testing.assert_array_equal(x, pipeline.candidate_indices(0, 5, 2, 3, 50, 60))
  for other in [(1, 5, 2), (0, 6, 2), (0, 5, 3)]:
    assert not np.array_equal(x, pipeline.candidate_indices(*other, 3, 50, 60))


def test_candidate_indices_are_uniform():
  counts = np.bincount(np.concatenate(
      [pipeline.candidate_indices(0, s, 0, 4, 10, 20).ravel() for s in range(500)]), minlength=20)
  assert counts.min() > 0.85 * 1000 and counts.max() < 1.15 * 1000  # 20,000 draws of 20.


@pytest.mark.parametrize("args,message", [
    ((0, 1, 0, 1, 11, 10), "a candidate set of 11 images needs a dataset of at least 11 images; "
     "it has 10"),
    ((0, -1, 0, 1, 2, 10), "step=-1: expected an integer >= 0")])
def test_bad_candidate_arguments(args, message):
  with pytest.raises(ValueError) as e:
    pipeline.candidate_indices(*args)
  assert str(e.value) == message


def test_global_candidate_indices_depend_on_seed_and_step_only():
  """The global sets are a pure function of (seed, step), distinct images in each set, and not
  any device's own sets."""
  x = pipeline.global_candidate_indices(seed=0, step=5, num_sets=3, n=50, dataset_size=60)
  assert x.shape == (3, 50) and x.dtype == np.int64 and x.min() >= 0 and x.max() < 60
  assert all(len(set(row)) == 50 for row in x)
  np.testing.assert_array_equal(x, pipeline.global_candidate_indices(0, 5, 3, 50, 60))
  for other in [(1, 5), (0, 6)]:
    assert not np.array_equal(x, pipeline.global_candidate_indices(*other, 3, 50, 60))
  for device in range(4):
    assert not np.array_equal(x, pipeline.candidate_indices(0, 5, device, 3, 50, 60))


def global_stream(device_indices, num_devices, **kwargs):
  return stream(device_indices, n=32, scope="global", num_devices=num_devices, **kwargs)


def test_global_stream_gives_each_device_its_shard_and_every_row():
  """Each device gets the rows (indices) of all of the step's global sets and the images of its
  contiguous shard; 1, 2 and 4 devices, in 1 or 2 processes, hold the same global sets."""
  sets = [pipeline.global_candidate_indices(3, s, 2, 32, 1000) for s in (1, 2)]
  layouts = {1: [[0]], 2: [[0, 1]], 4: [[0, 1, 2, 3], [0, 1], [2, 3]]}
  for num_devices, processes in layouts.items():
    m = 32 // num_devices
    for devices in processes:
      for (step, x, indices), want in zip(take(global_stream(devices, num_devices), 2), sets):
        assert x.shape == (len(devices), 2, m, 2, 2, 3) and indices.shape == (len(devices), 2, 32)
        for row, d in enumerate(devices):
          np.testing.assert_array_equal(indices[row], want)
          np.testing.assert_array_equal(spelled(x[row]), want[:, d * m:(d + 1) * m])


def test_resumed_global_stream_sees_the_uninterrupted_batches():
  whole = take(global_stream([1, 3], 4), 4)
  resumed = take(global_stream([1, 3], 4, start_step=3), 2)
  for (s, x, i), (t, y, j) in zip(whole[2:], resumed):
    assert s == t
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(i, j)


@pytest.mark.parametrize("kwargs,message", [
    ({"scope": "host"}, "scope='host': expected one of ('device', 'global')"),
    ({"scope": "global", "num_devices": 3},
     "num_devices=3: expected a positive divisor of n=16 (each device holds an equal shard of the "
     "global candidates)"),
    ({"scope": "global", "num_devices": None},
     "num_devices=None: expected a positive divisor of n=16 (each device holds an equal shard of "
     "the global candidates)"),
    ({"scope": "global", "num_devices": 2, "device_indices": [1, 2]},
     "device_indices=[1, 2]: expected indices below num_devices=2")])
def test_bad_scope_arguments(kwargs, message):
  kwargs = {"device_indices": [0], **kwargs}
  with pytest.raises(ValueError) as e:
    stream(**kwargs)
  assert str(e.value) == message


def test_stream_shapes_dtypes_and_images_of_the_indices():
  (step, x, indices), = take(stream([5, 1]), 1)
  assert step == 1
  assert x.shape == (2, 2, 16, 2, 2, 3) and x.dtype == np.uint8
  assert indices.shape == (2, 2, 16) and indices.dtype == np.int64
  np.testing.assert_array_equal(spelled(x), indices)
  np.testing.assert_array_equal(indices[0], pipeline.candidate_indices(3, 1, 5, 2, 16, 1000))
  np.testing.assert_array_equal(indices[1], pipeline.candidate_indices(3, 1, 1, 2, 16, 1000))


def test_resumed_stream_sees_the_uninterrupted_batches():
  whole = take(stream([0, 1]), 6)
  resumed = take(stream([0, 1], start_step=4), 3)
  assert [s for s, _, _ in resumed] == [4, 5, 6]
  for (s, x, i), (t, y, j) in zip(whole[3:], resumed):
    assert s == t
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(i, j)


def test_two_processes_of_two_devices_draw_what_one_of_four_does():
  one = take(stream([0, 1, 2, 3]), 3)
  first, second = take(stream([0, 1]), 3), take(stream([2, 3]), 3)
  for (s, x, i), (_, x0, i0), (_, x1, i1) in zip(one, first, second):
    np.testing.assert_array_equal(x, np.concatenate([x0, x1]))
    np.testing.assert_array_equal(i, np.concatenate([i0, i1]))
    # Every device, of either process, has its own stream.
    rows = [tuple(row.ravel()) for row in i]
    assert len(set(rows)) == 4, s


def test_thread_count_and_steps_in_flight_do_not_change_the_draws():
  reference = take(stream([0, 2], num_threads=1, steps_in_flight=1), 4)
  for other in (take(stream([0, 2], num_threads=3, steps_in_flight=3), 4),
                take(stream([0, 2], num_threads=None), 4)):
    for (s, x, i), (t, y, j) in zip(reference, other):
      assert s == t
      np.testing.assert_array_equal(x, y)
      np.testing.assert_array_equal(i, j)


class Failing(NumberedSource):
  def images(self, indices):
    if 7 in indices:
      raise ValueError("cannot read image 7")
    return super().images(indices)


def test_worker_error_is_raised_by_next_and_close_stops_the_threads():
  source = Failing(size=8)
  s = pipeline.CandidateStream(source, seed=0, device_indices=[0], n_dis=1, n=8, start_step=1,
                               num_threads=2)
  with pytest.raises(ValueError, match="cannot read image 7"):
    s.next()
  s.close()
  s.close()
  assert not [t for t in threading.enumerate() if t.name.startswith("candidates")]
  with pytest.raises(RuntimeError, match="closed"):
    s.next()


def test_stream_from_config():
  config = small_config({"batch_size": 8, "n_dis": 2, "coreset.factor_target": 4,
                         "steps_in_flight": 3})
  config.data = images.data_config(num_threads=2)
  with pipeline.stream_from_config(config, NumberedSource(), [1], num_devices=2,
                                   start_step=7) as s:
    assert (s.n_dis, s.n, s.steps_in_flight, s.num_threads) == (2, 16, 3, 2)
    step, x, indices = s.next()
  assert step == 7 and x.shape == (1, 2, 16, 2, 2, 3)
  config.coreset.target_scope = "global"  # Sets of factor * batch, this device's half of them.
  with pipeline.stream_from_config(config, NumberedSource(), [1], num_devices=2,
                                   start_step=7) as s:
    assert (s.scope, s.n, s.num_devices) == ("global", 32, 2)
    step, x, indices = s.next()
  assert x.shape == (1, 2, 16, 2, 2, 3) and indices.shape == (1, 2, 32)


def test_steps_per_epoch():
  assert pipeline.steps_per_epoch(50_000, 64, 5) == 156
  assert pipeline.steps_per_epoch(100, 64, 5) == 1


def test_to_devices_and_floats_on_one_device():
  mesh = Mesh(np.asarray(jax.devices()[:1]), ("batch",))
  assert pipeline.process_device_indices(mesh) == [0]
  (_, x, indices), = take(stream(pipeline.process_device_indices(mesh)), 1)
  gx, gi = pipeline.to_devices(x, indices, mesh)
  assert gx.shape == x.shape and gx.dtype == jnp.uint8 and gi.shape == indices.shape
  assert gx.sharding.spec == jax.sharding.PartitionSpec("batch")
  np.testing.assert_array_equal(np.asarray(gx), x)
  np.testing.assert_array_equal(np.asarray(gi), indices)
  floats = jax.jit(pipeline.images_to_float)(jnp.array([0, 128, 255], jnp.uint8))
  assert floats.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(floats), [-1.0, 1 / 255, 1.0], atol=1e-7)


# (flags, the error argparse prints after "input_pipeline.py: error: "). One row per bad flag.
BAD_FLAGS = [
    (["--threads", "2", "0"], "argument --threads: '0': expected a positive integer"),
    (["--steps=-1"], "argument --steps: '-1': expected a positive integer"),
    (["--n=1.5"], "argument --n: '1.5': expected a positive integer"),
    (["--resolution=0"], "argument --resolution: '0': expected a positive integer"),
    (["--min_seconds=-1"], "argument --min_seconds: '-1': expected a number >= 0"),
    (["--sources", "lmdb"], "argument --sources: invalid choice: 'lmdb' (choose from 'idx', "
     "'folder')"),
    (["--sources", "folder", "--n=600", "--folder_images=500"],
     "--n=600: expected at most --folder_images=500 (a set holds distinct images)"),
]


@pytest.mark.parametrize("argv,error", BAD_FLAGS, ids=[" ".join(row[0]) for row in BAD_FLAGS])
def test_bad_benchmark_flag_is_one_line(argv, error, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["input_pipeline.py", *argv])
  with pytest.raises(SystemExit) as e:
    input_pipeline.main()
  assert e.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == f"input_pipeline.py: error: {error}"


def test_benchmark_missing_idx_dir_is_one_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["input_pipeline.py", f"--idx_dir={tmp_path}"])
  with pytest.raises(SystemExit):
    input_pipeline.main()
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith(f"input_pipeline.py: error: --idx_dir='{tmp_path}': idx dataset "
                        f"'fashion_mnist' not found: looked for train-images-idx3-ubyte[.gz] in "
                        f"{tmp_path}; install them with `apt-get install -y dataset-fashion-mnist`")


def test_benchmark_runs_on_tiny_sources(tmp_path, monkeypatch, capsys):
  """Both sources end to end, with idx files written here (so the package is not needed)."""
  from tests.images_test import idx_images, write_idx  # pylint: disable=g-import-not-at-top
  write_idx(str(tmp_path / "train-images-idx3-ubyte"), idx_images(40, 0))
  monkeypatch.setattr(sys, "argv", [
      "input_pipeline.py", f"--idx_dir={tmp_path}", "--threads", "1", "2", "--steps=2", "--n=8",
      "--min_seconds=0", "--folder_images=10", "--jpeg_size=16", "--resolution=8",
      "--step_steps=0"])
  input_pipeline.main()
  out = capsys.readouterr().out
  assert "idx fashion_mnist/train (28, 28, 1) | 2 |" in out and "folder (8, 8, 3) | 1 |" in out
