"""Converts pytorch-fid's Inception weights (.pth) to an .npz that `features.load_inception` reads.

`features.load_inception` downloads and converts the file on first use (`inception.fetch_weights`).
On a machine without internet, copy the .pth there and run (no torch needed: the .pth is read
by `torch_weights`, and its sha256 checked against the `6726825d` in its name):

    python -m smallgan_jax.features.convert_inception \
        --pth=pt_inception-2015-12-05-6726825d.pth \
        --out=~/.cache/smallgan_jax/fid_inception_2015-12-05.npz

The .pth is the state dict of torchvision's `Inception3(num_classes=1008, aux_logits=False)` with
pytorch-fid's FID blocks, from https://github.com/mseitzer/pytorch-fid/releases (tag
fid_weights). Each key maps to the Flax module path of the same name
(`inception.FIDInceptionV3`): `X.conv.weight` (O, I, kh, kw) -> `params/X/conv/kernel`
(kh, kw, I, O); `X.bn.weight|bias` -> `params/X/bn/scale|bias`; `X.bn.running_mean|running_var`
-> `batch_stats/X/bn/mean|var`; `fc.weight` (1008, 2048) -> `params/fc/kernel` (2048, 1008).
`num_batches_tracked` is dropped; any other key is refused. The .npz holds float32 arrays under
those '/'-joined paths, plus `__meta__/source` and `__meta__/source_sha256` (the .pth's).
"""
import argparse
import os
import sys
from typing import Mapping

import numpy as np

from smallgan_jax.features import torch_weights

META_PREFIX = "__meta__/"
_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """torch state dict (numpy arrays) -> {"params/..." or "batch_stats/...": float32 array}."""
  out, unknown = {}, []
  for key, value in state_dict.items():
    value = np.asarray(value)
    *module, leaf = key.split(".")
    if leaf == "num_batches_tracked":
      continue
    if module[-1:] == ["conv"] and leaf == "weight" and value.ndim == 4:
      out["/".join(["params", *module, "kernel"])] = value.transpose(2, 3, 1, 0)
    elif module[-1:] == ["bn"] and leaf in _BN_LEAVES:
      collection, name = _BN_LEAVES[leaf]
      out["/".join([collection, *module, name])] = value
    elif module == ["fc"] and leaf == "weight" and value.ndim == 2:
      out["params/fc/kernel"] = value.T
    elif module == ["fc"] and leaf == "bias":
      out["params/fc/bias"] = value
    else:
      unknown.append(key)
  if unknown:
    raise ValueError(f"{len(unknown)} state-dict keys are not in the FID Inception (first: "
                     f"{', '.join(unknown[:3])}); expected pytorch-fid's "
                     "pt_inception-2015-12-05-6726825d.pth")
  return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def save_npz(arrays: Mapping[str, np.ndarray], out: str, source: str = "",
             source_sha256: str = "") -> str:
  """Writes the converted arrays (and where they came from) to `out`, atomically."""
  out = os.path.expanduser(out)
  if os.path.dirname(out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + ".tmp.npz"
  np.savez(tmp, **arrays, **{META_PREFIX + "source": np.str_(source),
                             META_PREFIX + "source_sha256": np.str_(source_sha256)})
  os.replace(tmp, out)
  return out


def convert_file(pth: str, out: str) -> str:
  """pytorch-fid's .pth -> Flax .npz at `out`; returns `out`. Refuses a .pth whose sha256 does
  not match the digest prefix in its name (`torch_weights.check_digest`)."""
  pth = os.path.expanduser(pth)
  digest = torch_weights.check_digest(pth)
  arrays = convert_state_dict(torch_weights.load_state_dict(pth))
  return save_npz(arrays, out, os.path.basename(pth), digest)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pth", required=True, help="pt_inception-2015-12-05-6726825d.pth")
  parser.add_argument("--out", required=True, help="the .npz to write")
  args = parser.parse_args(argv)
  try:
    out = convert_file(args.pth, args.out)
  except (OSError, ValueError) as e:  # Missing, corrupted or unsafe file: one line.
    sys.exit(f"FATAL {e}")
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
