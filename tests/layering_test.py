"""The features layer has one direction (issue 24): each module imports only modules below it,
in-function imports included, and there is one `ImageSource` protocol."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "smallgan_jax"
# Bottom to top; a module may import only modules of a lower rank.
RANKS = {
    "smallgan_jax.data": 0, "smallgan_jax.data.images": 0,
    "smallgan_jax.data.anomaly": 1,
    "smallgan_jax.caching": 2, "smallgan_jax.metrics.inception": 2,
    "smallgan_jax.features.classifier": 3,
    "smallgan_jax.features": 4,
    "smallgan_jax.metrics.fid": 5, "smallgan_jax.embeddings": 5,
    "smallgan_jax.metrics.image_scores": 6,
    "smallgan_jax.reference_pass": 7, "smallgan_jax.preparation": 7,
    "smallgan_jax.datasets": 8,
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> set[str]:
  """The package's modules `path` imports anywhere in it (`from a import b`: a and a.b)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
  return {name for name in names if name.startswith("smallgan_jax")}


@pytest.mark.parametrize("module", sorted(RANKS))
def test_a_module_of_the_layer_imports_only_modules_below_it(module):
  path = PACKAGE.parent / (module.replace(".", "/") + ".py")
  if not path.exists():
    path = path.with_suffix("") / "__init__.py"
  above = sorted(name for name in imports(path) if name in RANKS and name != module
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
