"""smallgan_jax as a library: the core-set example trains on core-sets, and `pip install .` brings
every package that smallgan_jax and the example import."""
import ast
import importlib.util
import os
import re
import sys
import tomllib

import jax
import numpy as np

from benchmarks.coreset_reference import greedy_k_center_numpy
from smallgan_jax import sampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "coreset_in_your_loop.py")
# Import names whose distribution is named otherwise; any other import name is its distribution.
DISTRIBUTION_OF = {"PIL": "pillow", "absl": "absl-py", "ml_collections": "ml-collections",
                   "orbax": "orbax-checkpoint", "sklearn": "scikit-learn",
                   "tensorflow": "tensorflow-cpu", "tensorflow_datasets": "tensorflow-datasets"}


def _load_example():
  spec = importlib.util.spec_from_file_location("coreset_in_your_loop", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


example = _load_example()


def _reference_batches(rng, embedder):
  """The greedy k-center picks (NumPy reference) of the candidates `sample_batches` draws."""
  prior_rng, target_rng = jax.random.split(rng)
  z = np.asarray(sampling.sample_prior(
      prior_rng, (2, example.FACTOR_PRIOR * example.BATCH, example.Z_DIM), "normal"))
  x, emb = (np.asarray(a[0]) for a in example.draw_candidates(
      target_rng, 1, example.FACTOR_TARGET * example.BATCH, embedder))
  z_d, z_g = (z[s][greedy_k_center_numpy(z[s], example.BATCH)] for s in range(2))
  return z_d, z_g, x[greedy_k_center_numpy(emb, example.BATCH)], x


def test_step_trains_on_the_greedy_k_center_picks_of_its_candidates():
  state = example.init_state(jax.random.PRNGKey(0))
  embedder = example.make_embedder(jax.random.PRNGKey(1))
  rng = jax.random.PRNGKey(2)
  z_d, z_g, real, candidates = _reference_batches(rng, embedder)
  assert not np.array_equal(real, candidates[:example.BATCH])  # a selection, not a prefix
  for got, want in zip(example.sample_batches(rng, embedder), (z_d, z_g, real)):
    np.testing.assert_array_equal(got, want)

  new_state, metrics = example.train_step(state, rng, embedder)
  expected, _ = example.update(state, z_d, z_g, real)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new_state, expected)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for before, after in ((state.g_params, new_state.g_params), (state.d_params, new_state.d_params)):
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before),
                                                          jax.tree.leaves(after)))


def test_main_trains_a_few_steps_and_reports(capsys):
  example.main(["--steps=3"])
  out = capsys.readouterr().out
  match = re.fullmatch(r"3 steps: d_loss (\S+), g_loss (\S+), modes recovered \d/8, "
                       r"high-quality samples \S+%\n", out)
  assert match, out
  assert all(np.isfinite(float(v)) for v in match.groups())


def _pyproject():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def _normalize(name):
  return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(specs):
  """{normalized distribution name: version specifier} of PEP 508 strings (extras dropped)."""
  parsed = (re.fullmatch(r"([A-Za-z0-9._-]+)(\[[^]]*\])?\s*(.*)", spec) for spec in specs)
  return {_normalize(m.group(1)): m.group(3) for m in parsed}


def _third_party_imports(path):
  """{top-level module: imported at module level?} of the absolute non-stdlib imports in `path`."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  in_functions = {id(node) for f in ast.walk(tree)
                  if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in ast.walk(f)}
  imports = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      names = [node.module]
    else:
      continue
    for top in {name.split(".")[0] for name in names}:
      if top not in sys.stdlib_module_names and top not in ("__future__", "smallgan_jax"):
        imports[top] = imports.get(top, False) or id(node) not in in_functions
  return imports


def _installed_sources():
  """The package's modules, and the example that docs/library.md runs after `pip install .`."""
  for dirpath, _, filenames in os.walk(os.path.join(ROOT, "smallgan_jax")):
    yield from (os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
  yield EXAMPLE


def test_pyproject_declares_every_import():
  """Module-level imports need a dependency; imports inside functions may be in an extra."""
  project = _pyproject()["project"]
  required = _requirements(project["dependencies"])
  extras = _requirements(spec for specs in project["optional-dependencies"].values()
                         for spec in specs)
  missing = []
  for path in _installed_sources():
    for module, at_import in _third_party_imports(path).items():
      distribution = _normalize(DISTRIBUTION_OF.get(module, module))
      if distribution not in required and (at_import or distribution not in extras):
        missing.append(f"{os.path.relpath(path, ROOT)}: {module} ({distribution})")
  assert not missing, ("not in pyproject.toml's dependencies (map other import names in "
                       f"DISTRIBUTION_OF): {missing}")


def test_pyproject_bounds_are_the_requirements_pins():
  """requirements.txt's runtime pins are pyproject's dependencies, its others the test extra."""
  project = _pyproject()["project"]
  declared = {**_requirements(project["optional-dependencies"]["test"]),
              **_requirements(project["dependencies"])}
  with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
    pins = [line.split("#")[0].strip() for line in f]
  for name, version in (pin.split("==") for pin in pins if pin):
    assert declared.get(_normalize(name)) == f">={version}", (name, version)


def test_wheel_includes_every_subpackage():
  """setuptools' `include` finds a directory only if it has an __init__.py."""
  assert _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"] == ["smallgan_jax*"]
  for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "smallgan_jax")):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    if any(f.endswith(".py") for f in filenames):
      assert "__init__.py" in filenames, os.path.relpath(dirpath, ROOT)
