"""Trains, saves and reuses the `classifier` feature network (`models/classifier.py`).

For data where the FID Inception's weights are not at hand, the target core-set embeds images with
the penultimate features of a small CNN trained on the training split's labels (seed 0,
`embeddings.py`), and "classifier FID" scores samples on those of another seed (1 by default,
`metrics/image_scores.py`). The classes it trains on are `config.coreset.embedding_classes` (None:
every label of the split), so that an anomaly experiment can leave its held-out class out; the
network then has one logit per listed class, and images of other classes are skipped in training
(they are still embedded).

The params are saved once, with flax's msgpack serialization, in the cache directory
(`caching.py`):

    <cache_dir>/<source>.classifier-<classes>[-seed<S>].msgpack   the params
    <cache_dir>/<source>.classifier-<classes>[-seed<S>].json      sha256 of the params file,
                                                                   dataset, count, sample
                                                                   fingerprint, classes,
                                                                   settings, test accuracy

and reused while the file's sha256 and the metadata match the source, the class list and the
training settings; a mismatch refuses (one line naming both values) rather than retraining over it.
Training is deterministic for a given seed on a given device and jax version. The network, its
training and its file names define the classifier FID of every run so far: a change to any of
them must come under a new `network_tag`, so that scores before and after stay comparable.
"""
import dataclasses
import functools
import hashlib
import json
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
from etils import epath
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax

from smallgan_jax import caching, checkpointing
from smallgan_jax.data import images as images_lib
from smallgan_jax.models import classifier as classifier_model

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """How the classifier is trained (recorded with it; another setting is another classifier).

  The defaults are the `classifier` network's (issue 13): 91.8% test accuracy on Fashion-MNIST.
  `schedule` "cosine" decays the learning rate to 0 over the run (optax), "constant" keeps it;
  `downsample` is the network's (`models/classifier.py`: "max_pool" or "stride").
  """
  epochs: int = 6
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  channels: tuple[int, ...] = (32, 64)
  feature_dim: int = 128
  schedule: str = "constant"
  downsample: str = "max_pool"

  def __post_init__(self):
    for field, allowed in (("schedule", SCHEDULES), ("downsample", DOWNSAMPLES)):
      if getattr(self, field) not in allowed:
        raise ValueError(f"classifier {field} {getattr(self, field)!r}: expected one of {allowed}")


SCHEDULES = ("constant", "cosine")
DOWNSAMPLES = ("max_pool", "stride")
# Fields added after the first classifiers were saved, with the value those were trained with:
# recorded only where they differ from it, so that the saved classifiers keep matching.
ADDED_FIELDS = {"schedule": "constant", "downsample": "max_pool"}
# The named networks: each name is a file-name part (`network_tag`) and a set of settings, so
# that a changed recipe comes under a new name and the scores of the old one stay comparable.
RECIPES = {
    "classifier": TrainSettings(),
    # A first image run trains two of these before its first step (issue 24): stride-2 convs,
    # since the max-pool's gradient dominates a step on XLA's CPU backend (5-6x slower); 91.1% and
    # 91.0% test accuracy (seeds 0, 1) in about 50 s each on a 2-core CPU (docs/embeddings.md).
    "classifier2": TrainSettings(epochs=4, batch_size=128, learning_rate=2e-3, schedule="cosine",
                                 downsample="stride"),
}


def recipe(name: str, seed: int = 0) -> TrainSettings:
  """The settings of the network `name` (a key of `RECIPES`) at `seed`."""
  if name not in RECIPES:
    raise ValueError(f"classifier network {name!r}: expected one of {tuple(RECIPES)}")
  return dataclasses.replace(RECIPES[name], seed=seed)


@dataclasses.dataclass(frozen=True)
class Trained:
  """A trained classifier: its module, params, metadata, where it is saved and which of the
  `RECIPES` networks it is."""
  model: classifier_model.CNNClassifier
  params: Any
  meta: dict
  path: Optional[epath.Path] = None
  network: str = "classifier"

  @functools.cached_property
  def features(self) -> Callable[[Any], jax.Array]:
    """uint8 images (b, H, W, C) -> penultimate features (b, feature_dim), jitted."""
    apply = jax.jit(functools.partial(self.model.apply,
                                      method=classifier_model.CNNClassifier.features))
    return lambda images: apply(self.params, images)

  @functools.cached_property
  def logits(self) -> Callable[[Any], jax.Array]:
    apply = jax.jit(self.model.apply)
    return lambda images: apply(self.params, images)


def classes_tag(classes: Optional[Sequence[int]]) -> str:
  """"all", the ids joined ("0-1-2-3-4-5-6-7-9"), or for over 16 classes a short hash."""
  if classes is None:
    return "all"
  if len(classes) <= 16:
    return "-".join(str(c) for c in classes)
  return "h" + hashlib.sha256(json.dumps(list(classes)).encode()).hexdigest()[:12]


def network_tag(classes: Optional[Sequence[int]], seed: int = 0,
                network: str = "classifier") -> str:
  """Names a classifier in file names: the network (a key of `RECIPES`), its classes, and its
  seed unless 0 (a classifier of another seed scores samples with features other than those that
  picked the core-sets)."""
  return f"{network}-{classes_tag(classes)}" + (f"-seed{seed}" if seed else "")


def weights_path(cache_dir: str, source_name: str, classes: Optional[Sequence[int]],
                 seed: int = 0, network: str = "classifier") -> epath.Path:
  """Where the classifier `network` of `source_name`, `classes` and `seed` is saved (`.msgpack`;
  `.json` beside)."""
  return (caching.cache_dir_path(cache_dir) / f"{caching.file_stem(source_name)}."
          f"{network_tag(classes, seed, network)}.msgpack")


def stored_sha256(cache_dir: str, source_name: str, classes: Optional[Sequence[int]],
                  network: str = "classifier") -> Optional[str]:
  """The sha256 its metadata records for the saved classifier `network` (seed 0, the embedding
  model's); None if none is saved."""
  meta = caching.meta_path(weights_path(cache_dir, source_name, classes, network=network))
  if not meta.exists():
    return None
  return json.loads(meta.read_text())["sha256"]


def _read_images(source: images_lib.ImageSource, indices: np.ndarray,
                 chunk: int = 8192) -> np.ndarray:
  parts = [source.images(indices[i:i + chunk]) for i in range(0, len(indices), chunk)]
  return np.concatenate(parts).astype(np.uint8, copy=False)


def select(source: images_lib.ImageSource,
           classes: Optional[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """(indices of the images in `classes`, their targets 0..len(classes)-1, the class ids).

  None takes every label of `source`, sorted. A listed class the source lacks is refused.
  """
  labels = np.asarray(source.labels(np.arange(len(source))), np.int64)
  class_ids = sorted(set(labels.tolist())) if classes is None else [int(c) for c in classes]
  if len(set(class_ids)) != len(class_ids):
    raise ValueError(f"config.coreset.embedding_classes={list(classes)}: a class is repeated")
  missing = sorted(set(class_ids) - set(labels.tolist()))
  if missing:
    raise ValueError(f"config.coreset.embedding_classes={list(classes)}: {source.name} has no "
                     f"image of class {missing[0]} (its labels: {sorted(set(labels.tolist()))})")
  if len(class_ids) < 2:
    raise ValueError(f"config.coreset.embedding_classes={class_ids}: a classifier needs at least "
                     "2 classes")
  target_of = {c: i for i, c in enumerate(class_ids)}
  indices = np.flatnonzero(np.isin(labels, class_ids))
  targets = np.array([target_of[c] for c in labels[indices].tolist()], np.int32)
  return indices, targets, class_ids


def make_model(num_classes: int, settings: TrainSettings) -> classifier_model.CNNClassifier:
  return classifier_model.CNNClassifier(num_classes=num_classes, channels=settings.channels,
                                        feature_dim=settings.feature_dim,
                                        downsample=settings.downsample)


@jax.jit
def _train_step(state: train_state.TrainState, images: jax.Array,
                targets: jax.Array) -> tuple[train_state.TrainState, jax.Array]:
  def loss_fn(params):
    logits = state.apply_fn(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


def accuracy(trained: Trained, source: images_lib.ImageSource, batch: int = 1000) -> float:
  """Test accuracy on the images of `source` in the classifier's classes."""
  indices, targets, _ = select(source, trained.meta["classes"])
  batch = min(batch, len(indices))
  correct = 0
  for start in range(0, len(indices), batch):
    chunk = indices[start:start + batch]
    images = np.zeros((batch, *source.shape), np.uint8)
    images[:len(chunk)] = source.images(chunk)
    predicted = np.asarray(jnp.argmax(trained.logits(images), axis=-1))[:len(chunk)]
    correct += int((predicted == targets[start:start + batch]).sum())
  return correct / max(len(indices), 1)


def train(source: images_lib.ImageSource, classes: Optional[Sequence[int]] = None,
          settings: TrainSettings = TrainSettings(),
          test_source: Optional[images_lib.ImageSource] = None) -> Trained:
  """Trains the classifier on `source`'s images of `classes` (Adam, cross-entropy), evaluates it
  on `test_source` if given; logs progress with an ETA. Returns it unsaved (`path` None)."""
  started = time.time()
  indices, targets, class_ids = select(source, classes)
  images = _read_images(source, indices)
  model = make_model(len(class_ids), settings)
  init_rng = jax.random.PRNGKey(settings.seed)
  params = jax.jit(model.init)(init_rng, jnp.zeros((1, *source.shape), jnp.uint8))
  rng = np.random.default_rng(settings.seed)
  batch = min(settings.batch_size, len(indices))
  steps_per_epoch = len(indices) // batch
  state = train_state.TrainState.create(
      apply_fn=model.apply, params=params,
      tx=optax.adam(_learning_rate(settings, settings.epochs * steps_per_epoch)))
  progress = caching.Progress(settings.epochs * steps_per_epoch,
                                 f"Training the classifier on {source.name}", unit="steps")
  for epoch in range(settings.epochs):
    order = rng.permutation(len(indices))
    losses = []
    for step in range(steps_per_epoch):
      take = order[step * batch:(step + 1) * batch]
      state, loss = _train_step(state, images[take], targets[take])
      losses.append(loss)
      progress.update(epoch * steps_per_epoch + step + 1)
    logging.info("Classifier epoch %d/%d: mean loss %.4f", epoch + 1, settings.epochs,
                 float(jnp.mean(jnp.stack(losses))))
  meta = {
      "format": FORMAT,
      "dataset": source.name,
      "count": len(source),
      "sample_fingerprint": caching.sample_fingerprint(source),
      "classes": None if classes is None else [int(c) for c in classes],
      "class_ids": class_ids,
      "train_images": len(indices),
      "settings": _settings_dict(settings),
      "train_seconds": round(time.time() - started, 1),
  }
  trained = Trained(model=model, params=state.params, meta=meta)
  if test_source is not None:
    meta["test_dataset"] = test_source.name
    meta["test_accuracy"] = accuracy(trained, test_source)
    logging.info("Classifier test accuracy on %s: %.4f", test_source.name, meta["test_accuracy"])
  return trained


def _learning_rate(settings: TrainSettings, steps: int) -> optax.ScalarOrSchedule:
  if settings.schedule == "cosine":
    return optax.cosine_decay_schedule(settings.learning_rate, steps)
  return settings.learning_rate


def _settings_dict(settings: TrainSettings) -> dict:
  """The settings as recorded (tuples as lists, as read back; `ADDED_FIELDS` at their old value
  left out)."""
  recorded = {k: v for k, v in dataclasses.asdict(settings).items()
              if k not in ADDED_FIELDS or v != ADDED_FIELDS[k]}
  return json.loads(json.dumps(recorded))


def save(trained: Trained, path: epath.Path) -> Trained:
  """Writes the params (msgpack) and then its metadata with their sha256, both atomically."""
  data = flax.serialization.to_bytes(trained.params)
  meta = {**trained.meta, "sha256": hashlib.sha256(data).hexdigest()}
  checkpointing.write_atomically(path, lambda f: f.write(data))
  checkpointing.write_json_atomically(caching.meta_path(path), meta)
  return dataclasses.replace(trained, meta=meta, path=path)


def _refuse(path: epath.Path, what: str) -> caching.CacheError:
  return caching.CacheError(
      f"saved classifier {path} {what}; delete it and its .json to retrain it, or set "
      "config.coreset.cache_dir elsewhere")


def load(path: epath.Path, source: images_lib.ImageSource, classes: Optional[Sequence[int]],
         settings: TrainSettings = TrainSettings()) -> Trained:
  """The saved classifier at `path`, checked against its checksum, `source`, `classes` and
  `settings` (`caching.CacheError`, one line naming both values, on a difference)."""
  try:
    meta = json.loads(caching.meta_path(path).read_text())
    data = path.read_bytes()
    stored = meta["sha256"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise _refuse(path, f"cannot be read ({type(e).__name__}: {' '.join(str(e).split())})"
                  ) from None
  digest = hashlib.sha256(data).hexdigest()
  if digest != stored:
    raise _refuse(path, f"has sha256 {digest}; its metadata records {meta['sha256']}")
  now = {"dataset": source.name, "count": len(source),
         "classes": None if classes is None else [int(c) for c in classes],
         "settings": _settings_dict(settings)}
  for key, value in now.items():
    if meta.get(key) != value:
      raise _refuse(path, f"was trained with {key} {meta.get(key)!r}; this run has {value!r}")
  fingerprint = caching.sample_fingerprint(source)
  if meta["sample_fingerprint"] != fingerprint:
    raise _refuse(path, f"was trained on other images of {source.name!r} (sample sha256 "
                  f"{meta['sample_fingerprint'][:16]}..., the dataset's now {fingerprint[:16]}...)")
  model = make_model(len(meta["class_ids"]), settings)
  template = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, *source.shape), jnp.uint8))
  params = flax.serialization.msgpack_restore(data)
  shapes = lambda tree: jax.tree.map(lambda x: tuple(x.shape), tree)
  if shapes(params) != shapes(template):
    raise _refuse(path, "holds params of another network than this run's "
                  f"(classes {meta['class_ids']}, {_settings_dict(settings)})")
  return Trained(model=model, params=params, meta=meta, path=path)


def load_or_train(cache_dir: str, source: images_lib.ImageSource,
                  classes: Optional[Sequence[int]] = None,
                  test_source: Optional[images_lib.ImageSource] = None,
                  settings: TrainSettings = TrainSettings(),
                  network: str = "classifier") -> Trained:
  """The saved classifier `network` of `source` and `classes` if there is one (checked), else a
  newly trained and saved one; `settings` are the network's (`recipe`)."""
  path = weights_path(cache_dir, source.name, classes, settings.seed, network)
  if caching.meta_path(path).exists():
    trained = load(path, source, classes, settings)
    logging.info("Reusing the classifier at %s (test accuracy %s)", path,
                 trained.meta.get("test_accuracy"))
  else:
    logging.info("No classifier at %s: training one", path)
    trained = save(train(source, classes, settings, test_source), path)
    logging.info("Saved the classifier to %s (sha256 %s)", path, trained.meta["sha256"])
  return dataclasses.replace(trained, network=network)
