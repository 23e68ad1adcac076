"""The features layer has one direction (issues 24, 33): each package imports only packages below
it and each module only modules below it, in-function imports included, and there is one
`ImageSource` protocol."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "smallgan_jax"
# Packages (or top-level modules), bottom to top: every module of one may import only its own
# package and those of a lower rank. `features` holds the networks and their weights, `metrics`
# computes scores on features, `embeddings` is the target core-set's array of features.
PACKAGE_RANKS = {
    "smallgan_jax.data": 0,
    "smallgan_jax.caching": 1,
    "smallgan_jax.features": 2,
    "smallgan_jax.metrics": 3,
    "smallgan_jax.embeddings": 4,
    "smallgan_jax.reference_pass": 5, "smallgan_jax.preparation": 5,
    "smallgan_jax.datasets": 6,
}
# Modules, bottom to top; a module may import only modules of a lower rank.
RANKS = {
    "smallgan_jax.data": 0, "smallgan_jax.data.images": 0,
    "smallgan_jax.data.anomaly": 1,
    "smallgan_jax.caching": 2, "smallgan_jax.features.torch_weights": 2,
    "smallgan_jax.features.convert_inception": 3,
    "smallgan_jax.features.inception": 4, "smallgan_jax.features.classifier": 4,
    "smallgan_jax.features": 5,
    "smallgan_jax.metrics.fid": 6, "smallgan_jax.embeddings": 6,
    "smallgan_jax.metrics.image_scores": 7,
    "smallgan_jax.reference_pass": 8, "smallgan_jax.preparation": 8,
    "smallgan_jax.datasets": 9,
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _path(module: str) -> pathlib.Path:
  """The file of `module`: its .py, or its package's __init__.py."""
  path = PACKAGE.parent / (module.replace(".", "/") + ".py")
  return path if path.exists() else path.with_suffix("") / "__init__.py"


def _is_module(name: str) -> bool:
  """Whether `name` is a module or package of the project (not a name defined in one)."""
  return _path(name).exists()


def imports(path: pathlib.Path) -> set[str]:
  """The package's modules `path` imports anywhere in it (`from a import b`: a.b where b is a
  module, so that a submodule importing its sibling does not count as importing its package;
  otherwise a, and a.b)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      for alias in node.names:
        name = f"{node.module}.{alias.name}"
        names |= {name} if _is_module(name) else {node.module, name}
  return {name for name in names if name.startswith("smallgan_jax")}


def _package_of(name: str) -> str | None:
  """The `PACKAGE_RANKS` entry that module `name` belongs to, if any."""
  return next((package for package in PACKAGE_RANKS
               if name == package or name.startswith(package + ".")), None)


@pytest.mark.parametrize("module", sorted(
    _module_name(path) for path in PACKAGE.rglob("*.py") if _package_of(_module_name(path))))
def test_a_package_of_the_layer_imports_only_packages_below_it(module):
  """Above all: nothing in `features/` imports `metrics/`, nothing in `metrics/` the embeddings."""
  package = _package_of(module)
  above = sorted(name for name in imports(_path(module)) if _package_of(name) not in (None, package)
                 and PACKAGE_RANKS[_package_of(name)] >= PACKAGE_RANKS[package])
  assert not above, f"{module} (in {package}) imports {above}, not below {package}"


@pytest.mark.parametrize("module", sorted(RANKS))
def test_a_module_of_the_layer_imports_only_modules_below_it(module):
  above = sorted(name for name in imports(_path(module)) if name in RANKS and name != module
                 and not name.startswith(module + ".") and RANKS[name] >= RANKS[module])
  assert not above, f"{module} imports {above}, not below it"


def test_there_is_one_image_source_protocol():
  defined = [_module_name(path) for path in sorted(PACKAGE.rglob("*.py"))
             if any(isinstance(node, ast.ClassDef) and node.name == "ImageSource"
                    for node in ast.walk(ast.parse(path.read_text())))]
  assert defined == ["smallgan_jax.data.images"]


def test_reference_implementations_are_outside_the_package():
  """Only tests and benchmarks use the plain greedy k-center: it is not shipped."""
  assert not (PACKAGE / "coreset_reference.py").exists()
  assert (PACKAGE.parent / "benchmarks" / "coreset_reference.py").exists()
