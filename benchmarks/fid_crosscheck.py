"""Checks the Flax FID Inception and the weights converter against pytorch-fid's own network.

The real weights (pt_inception-2015-12-05-6726825d.pth) cannot be downloaded here, so this builds
pytorch-fid's network (`pytorch_fid.inception.InceptionV3`, the FID blocks, pool3) with random
weights and no download, writes its state dict to a .pth as pytorch-fid's release file is laid
out, converts that file with `smallgan_jax.features.convert_inception` (the converter users run)
and loads it with `features.load_inception`; then runs both networks on the same random uint8
images, resize to 299 included, and compares:

- each block's output (Conv2d_2b_3x3, Conv2d_4a_3x3, Mixed_5b ... Mixed_7c), pool3 and the
  logits: relative error ||flax - torch|| / ||torch|| over the batch, for inputs that are
  upsampled (28x28 as Fashion-MNIST, 32x32 as CIFAR-10, 128x128 as LSUN) and downsampled
  (320x320) to 299. Both networks run in float64 (goal <= 1e-4 for every block: a difference
  of structure shows at 1e-3 or more, rounding at 1e-12) and in float32 (goal <= 1e-4 at pool3
  and the logits), beside torch's own float32 error (float32 torch against float64 torch), which
  random weights amplify from ~1e-6 to ~1e-4 over the blocks;
- the FID between two sets of images, torch features through pytorch-fid's
  `calculate_frechet_distance`, Flax features through `fid.image_statistics` (jitted batches,
  float64 statistics) and `fid.frechet_distance`: relative difference, goal <= 1e-3.

Random weights shrink (or grow) activations layer by layer, so that a wrong block could hide under
a vanishing signal. Before anything is compared, every batch norm's running mean and variance are
set to the statistics of its input on calibration images (one forward pass in train mode with
momentum=None); the table prints each block's RMS to show it stays of order 1. The batch norms'
scale and bias are random too, so their conversion is checked.

`--break=avgpool_in_7c` (Mixed_7c's pool branch averages instead of max-pooling) or
`--break=count_pad` (the average pools count the padding, as torchvision's Inception) run a
wrong Flax network; the check must then fail. The exit status is 0 when every goal is met.

It needs torch, torchvision and pytorch-fid beside jax and flax, in a venv of its own (torch is
not in requirements.txt); docs/fid.md has the setup, the command and the numbers:

  /work/fidvenv/bin/python benchmarks/fid_crosscheck.py [--fid_images=512] [--break=...]
"""
import argparse
import copy
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
# pylint: disable=g-import-not-at-top
import torch
import jax

jax.config.update("jax_enable_x64", True)  # For the float64 comparison; float32 stays float32.
from pytorch_fid import fid_score as torch_fid_score
from pytorch_fid import inception as torch_inception

from smallgan_jax import features
from smallgan_jax.features import convert_inception, inception
from smallgan_jax.metrics import fid

BLOCK_GOAL = 1e-4
FID_GOAL = 1e-3
BREAKS = {"none": {}, "avgpool_in_7c": {"mixed_7c_pool": "avg"},
          "count_pad": {"count_include_pad": True}}


def build_torch_network(seed: int):
  """pytorch-fid's InceptionV3 (pool3) with random weights, without downloading any.

  `fid_inception_v3` builds torchvision's Inception3, swaps in the FID blocks, then loads the
  release weights with `load_state_dict_from_url`; that call is replaced by one that hands back the
  network's own state dict, so loading changes nothing. Returns (InceptionV3, its Inception3).
  """
  built = []

  def no_download(url, **unused_kwargs):
    network = sys._getframe(1).f_locals["inception"]  # pylint: disable=protected-access
    built.append(network)
    print(f"not downloading {url}: random weights")
    return network.state_dict()

  torch_inception.load_state_dict_from_url = no_download
  torch.manual_seed(seed)
  model = torch_inception.InceptionV3([torch_inception.InceptionV3.DEFAULT_BLOCK_INDEX])
  with torch.no_grad():
    for module in built[0].modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.normal_(0.0, 0.2)
  return model, built[0]


def calibrate_batch_norms(model, inception3, images: np.ndarray) -> None:
  """Sets every batch norm's running statistics to those of its input on `images`."""
  for module in inception3.modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      module.reset_running_stats()
      module.momentum = None  # Cumulative average: after one batch, that batch's statistics.
  model.train()
  with torch.no_grad():
    model(to_torch(images))
  model.eval()


def to_torch(images: np.ndarray, dtype=torch.float32) -> torch.Tensor:
  """uint8 NHWC -> float NCHW in [0, 1], pytorch-fid's input (it resizes and maps to [-1, 1])."""
  return torch.from_numpy(images).permute(0, 3, 1, 2).to(dtype) / 255.0


def torch_outputs(model, inception3, images: np.ndarray, dtype=torch.float32
                  ) -> dict[str, np.ndarray]:
  """Each block's output (NHWC), pool3 and the logits (fc on pool3), from the torch network."""
  outputs, hooks = {}, []
  for name in inception.BLOCK_NAMES:
    hook = lambda _, __, out, name=name: outputs.__setitem__(name, out.permute(0, 2, 3, 1).numpy())
    hooks.append(getattr(inception3, name).register_forward_hook(hook))
  with torch.no_grad():
    pool3 = model(to_torch(images, dtype))[0].flatten(1)
    outputs["pool3"] = pool3.numpy()
    outputs["logits"] = inception3.fc(pool3).numpy()
  for hook in hooks:
    hook.remove()
  return outputs


def flax_outputs(model, variables, images: np.ndarray) -> dict[str, np.ndarray]:
  """The same from the Flax network, its blocks captured with `capture_intermediates`."""
  def run(variables, x):
    return model.apply(variables, x, capture_intermediates=lambda m, _: m.name in
                       inception.BLOCK_NAMES, mutable=["intermediates"])
  dtype = np.dtype(model.dtype)
  variables = jax.tree.map(lambda v: v.astype(dtype), variables)  # BN's rsqrt(var + eps) too.
  out, state = jax.jit(run)(variables, images.astype(dtype) / dtype.type(255))
  outputs = {name: np.asarray(state["intermediates"][name]["__call__"][0])
             for name in inception.BLOCK_NAMES}
  outputs.update(pool3=np.asarray(out["pool3"]), logits=np.asarray(out["logits"]))
  return outputs


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
  want = want.astype(np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def random_images(rng, count: int, size: int, dark: bool = False) -> np.ndarray:
  """uint8 (count, size, size, 3): uniform noise plus a smooth random field; `dark` squares it."""
  coarse = rng.uniform(size=(count, 4, 4, 3))
  smooth = np.kron(coarse, np.ones((1, -(-size // 4), -(-size // 4), 1)))[:, :size, :size]
  values = 0.5 * rng.uniform(size=(count, size, size, 3)) + 0.5 * smooth
  return np.rint(255 * (values ** 2 if dark else values)).astype(np.uint8)


def torch_features(model, images: np.ndarray, batch: int) -> np.ndarray:
  with torch.no_grad():
    return np.concatenate([model(to_torch(images[i:i + batch]))[0].flatten(1).numpy()
                           for i in range(0, len(images), batch)])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--break", dest="broken", choices=sorted(BREAKS), default="none")
  parser.add_argument("--block_images", type=int, default=8, help="images per size, blocks")
  parser.add_argument("--sizes", default="28,32,128,320",
                      help="input sizes for the block comparison")
  parser.add_argument("--calibration_images", type=int, default=32)
  parser.add_argument("--fid_images", type=int, default=512, help="images in each FID set")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  print(f"torch {torch.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"break={args.broken}")
  rng = np.random.default_rng(args.seed)
  started = time.time()
  model, inception3 = build_torch_network(args.seed)
  calibrate_batch_norms(model, inception3, np.concatenate([
      random_images(rng, args.calibration_images // 2, 32),
      random_images(rng, args.calibration_images // 2, 32, dark=True)]))

  with tempfile.TemporaryDirectory() as tmp:
    pth = os.path.join(tmp, "random_inception.pth")
    torch.save(inception3.state_dict(), pth)
    npz = convert_inception.convert_file(pth, os.path.join(tmp, "random_inception.npz"))
    network = features.load_inception(npz, inception.FIDInceptionV3(**BREAKS[args.broken]))
  variables = jax.device_put(network.variables)
  model64, inception3_64 = copy.deepcopy((model, inception3))
  inception3_64.double()  # Its modules are those of model64, and fc.

  sizes = [int(s) for s in args.sizes.split(",")]
  columns = [(size, kind) for size in sizes for kind in ("f64", "f32", "torch32")]
  errors = {column: {} for column in columns}
  rms = {}
  for size in sizes:
    images = random_images(rng, args.block_images, size)
    want64 = torch_outputs(model64, inception3_64, images, torch.float64)
    want32 = torch_outputs(model, inception3, images)
    got64, got32 = (flax_outputs(inception.FIDInceptionV3(dtype=dtype, **BREAKS[args.broken]),
                                 variables, images) for dtype in (np.float64, np.float32))
    for name, value in want64.items():
      errors[size, "f64"][name] = relative_error(got64[name], value)
      errors[size, "f32"][name] = relative_error(got32[name], want32[name])
      errors[size, "torch32"][name] = relative_error(want32[name], value)
      rms.setdefault(name, float(np.sqrt(np.mean(value ** 2))))
  print(f"\nblock outputs, {args.block_images} random images per input size: relative error "
        "||flax - torch|| / ||torch|| in float64 (f64) and float32 (f32); torch32: float32 torch "
        "against float64 torch")
  print(f"{'block':<15}{'rms':>7}" + "".join(f"{f'{s}: {kind}':>14}" for s, kind in columns))
  for name in errors[columns[0]]:
    print(f"{name:<15}{rms[name]:>7.3f}" + "".join(f"{errors[c][name]:>14.2e}" for c in columns))
  worst64 = max(max(errors[c].values()) for c in columns if c[1] == "f64")
  worst32 = max(errors[c][name] for c in columns if c[1] == "f32" for name in ("pool3", "logits"))

  set_a = random_images(rng, args.fid_images, 32)
  set_b = random_images(rng, args.fid_images, 32, dark=True)
  t0 = time.time()
  feats_a, feats_b = torch_features(model, set_a, args.batch), torch_features(model, set_b,
                                                                               args.batch)
  torch_s = time.time() - t0
  mu_a, mu_b = np.mean(feats_a, axis=0), np.mean(feats_b, axis=0)
  sigma_a, sigma_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
  fid_torch = torch_fid_score.calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
  fid_ours_on_torch = fid.frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
  t0 = time.time()
  stats_a = fid.image_statistics(network, set_a, args.batch)
  stats_b = fid.image_statistics(network, set_b, args.batch)
  flax_s = time.time() - t0
  fid_flax = fid.fid(stats_a, stats_b)
  fid_rel = abs(fid_flax - fid_torch) / abs(fid_torch)
  print(f"\nFID of {args.fid_images} vs {args.fid_images} images (32x32 -> 299; set B darker), "
        "pool3 features")
  print(f"  pytorch-fid features + pytorch-fid calculate_frechet_distance: {fid_torch:.6f}")
  print(f"  pytorch-fid features + fid.frechet_distance:                   {fid_ours_on_torch:.6f}"
        f"  (rel diff {abs(fid_ours_on_torch - fid_torch) / abs(fid_torch):.1e})")
  print(f"  flax features + fid.image_statistics + fid.frechet_distance:   {fid_flax:.6f}"
        f"  (rel diff {fid_rel:.1e}, goal <= {FID_GOAL:g})")
  print(f"  features of {2 * args.fid_images} images: torch {torch_s:.0f} s, flax {flax_s:.0f} s"
        f" (CPU); total {time.time() - started:.0f} s")
  ok = worst64 <= BLOCK_GOAL and worst32 <= BLOCK_GOAL and fid_rel <= FID_GOAL
  print(f"\n{'PASS' if ok else 'FAIL'}: worst float64 block relative error {worst64:.2e}, "
        f"worst float32 pool3/logits relative error {worst32:.2e} (goals {BLOCK_GOAL:g}); "
        f"FID relative difference {fid_rel:.1e} (goal {FID_GOAL:g})")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
