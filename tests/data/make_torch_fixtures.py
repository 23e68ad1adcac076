"""Writes the torch files that tests/torch_weights_test.py reads, with real torch. Run once.

torch is not a dependency of this project (the point of `smallgan_jax.features.torch_weights` is
to read its files without it), so this ran once in a scratch venv, and its outputs are committed:

    python3 -m venv /tmp/scratch_torch && /tmp/scratch_torch/bin/pip install torch numpy
    /tmp/scratch_torch/bin/python tests/data/make_torch_fixtures.py

Writes into this directory (names as torch hub's, `<stem>-<first 8 hex of sha256>.<ext>`):

- tensors_legacy-*.pt, tensors_zip-*.pt: one object saved in torch's legacy format
  (`_use_new_zipfile_serialization=False`, as files before torch 1.6) and in the zip format:
  a module's state dict (an OrderedDict with `_metadata`) plus tensors of eight dtypes, a 0-d
  and an empty one, an nn.Parameter, and views of one storage (transposed, offset, strided).
- tensors.npz: what each must load to, from torch's `.numpy()` (bfloat16, which NumPy lacks, as
  its exact float32 values).
- tiny_inception-*.pth: a state dict in the FID Inception's layout (pytorch-fid's release file,
  shrunk: one BasicConv2d and fc), legacy format; tiny_inception.npz: its Flax arrays, laid out
  here with torch (permute, transpose) as `convert_inception` documents the mapping.

Regenerating gives the same arrays; the legacy files' bytes, and so names, change (their storage
keys are memory addresses).
"""
import collections
import hashlib
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def save_with_digest(obj, stem: str, ext: str, zip_format: bool) -> str:
  """torch.save to `<stem>-<sha8>.<ext>` in this directory; returns the name."""
  tmp = os.path.join(HERE, f"{stem}.tmp")
  torch.save(obj, tmp, _use_new_zipfile_serialization=zip_format)
  with open(tmp, "rb") as f:
    name = f"{stem}-{hashlib.sha256(f.read()).hexdigest()[:8]}.{ext}"
  os.replace(tmp, os.path.join(HERE, name))
  return name


def tensors() -> collections.OrderedDict:
  generator = torch.Generator().manual_seed(0)
  randn = lambda *shape: torch.randn(*shape, generator=generator)
  module = torch.nn.Sequential(collections.OrderedDict(bn=torch.nn.BatchNorm1d(3)))
  module.bn.running_mean.copy_(randn(3))
  state = module.state_dict()  # An OrderedDict with `_metadata`; num_batches_tracked: int64.
  base = randn(4, 6)
  state.update({
      "base": base,
      "transposed": base.t(),       # Non-contiguous view of base's storage.
      "row": base[2],               # A view at an offset.
      "strided": base[1:, ::2],     # Strides (6, 2), offset 6.
      "float64": randn(3).double(),
      "float16": randn(2, 3).half(),
      "bfloat16": randn(5).bfloat16(),
      "int32": torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3),
      "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
      "uint8": torch.arange(0, 250, 50, dtype=torch.uint8),
      "bool": torch.tensor([True, False, True]),
      "scalar": torch.tensor(7),
      "empty": torch.zeros(0, 3),
      "parameter": torch.nn.Parameter(randn(2, 2)),
  })
  return state


def expected_arrays(state) -> dict:
  return {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().contiguous().numpy()
          for k, v in state.items()}


def tiny_inception() -> tuple[collections.OrderedDict, dict]:
  """A state dict with the release file's key layout, and its Flax arrays."""
  generator = torch.Generator().manual_seed(1)
  block = torch.nn.Module()
  block.conv = torch.nn.Conv2d(3, 4, 3, bias=False)
  block.bn = torch.nn.BatchNorm2d(4, eps=0.001)
  network = torch.nn.Module()
  network.Conv2d_1a_3x3 = block
  network.fc = torch.nn.Linear(4, 5)
  with torch.no_grad():
    for tensor in [*network.parameters(), block.bn.running_mean, block.bn.running_var]:
      tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
  state = network.state_dict()
  kernel = state["Conv2d_1a_3x3.conv.weight"].permute(2, 3, 1, 0)  # (O, I, kh, kw) -> Flax's.
  flax = {"params/Conv2d_1a_3x3/conv/kernel": kernel,
          "params/Conv2d_1a_3x3/bn/scale": state["Conv2d_1a_3x3.bn.weight"],
          "params/Conv2d_1a_3x3/bn/bias": state["Conv2d_1a_3x3.bn.bias"],
          "batch_stats/Conv2d_1a_3x3/bn/mean": state["Conv2d_1a_3x3.bn.running_mean"],
          "batch_stats/Conv2d_1a_3x3/bn/var": state["Conv2d_1a_3x3.bn.running_var"],
          "params/fc/kernel": state["fc.weight"].t(), "params/fc/bias": state["fc.bias"]}
  return state, {k: v.contiguous().numpy() for k, v in flax.items()}


def main():
  state = tensors()
  print(save_with_digest(state, "tensors_legacy", "pt", zip_format=False))
  print(save_with_digest(state, "tensors_zip", "pt", zip_format=True))
  np.savez(os.path.join(HERE, "tensors.npz"), **expected_arrays(state))
  inception_state, flax = tiny_inception()
  print(save_with_digest(inception_state, "tiny_inception", "pth", zip_format=False))
  np.savez(os.path.join(HERE, "tiny_inception.npz"), **flax)


if __name__ == "__main__":
  main()
