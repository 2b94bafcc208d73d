"""Library modules stay under 400 lines and library functions under 80 (issue 17).

``wc -l msal_jax/*.py msal_jax/*/*.py`` shows the first; this file checks both
with :mod:`ast`, so a module or function that grows past its size fails here
and gets split along its concepts instead.
"""

import ast
import glob
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "msal_jax")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Truly one concept each, with the reason; keep this list short.
MODULE_EXCEPTIONS: dict[str, str] = {}
FUNCTION_EXCEPTIONS: dict[str, str] = {}


def _modules():
  return sorted(glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True))


def _rel(path):
  return os.path.relpath(path, os.path.dirname(ROOT))


def function_sizes(path):
  """``{"module.py:qualified.name": lines}`` of every function, nested ones included."""
  tree = ast.parse(open(path).read())
  sizes = {}

  def visit(node, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
        name = f"{prefix}{child.name}"
        sizes[f"{_rel(path)}:{name}"] = child.end_lineno - child.lineno + 1
        visit(child, name + ".")
      elif isinstance(child, ast.ClassDef):
        visit(child, f"{prefix}{child.name}.")

  visit(tree, "")
  return sizes


def test_function_sizes_counts_a_known_case(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  x = 1\n  return x\n\n\nclass A:\n  def g(self):\n    pass\n")
  assert {k.split(":")[1]: v for k, v in function_sizes(str(path)).items()} == {"f": 3, "A.g": 2}


def test_modules_are_short():
  too_long = {}
  for path in _modules():
    with open(path) as f:
      lines = sum(1 for _ in f)
    if lines > MAX_MODULE_LINES and _rel(path) not in MODULE_EXCEPTIONS:
      too_long[_rel(path)] = lines
  assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"


def test_functions_are_short():
  too_long = {}
  for path in _modules():
    for name, lines in function_sizes(path).items():
      if lines > MAX_FUNCTION_LINES and name not in FUNCTION_EXCEPTIONS:
        too_long[name] = lines
  assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {too_long}"


def test_exceptions_are_still_needed():
  # An exception that no longer applies is removed, so the list stays honest.
  sizes = {}
  for path in _modules():
    sizes.update(function_sizes(path))
  for name in FUNCTION_EXCEPTIONS:
    assert sizes.get(name, 0) > MAX_FUNCTION_LINES, f"{name} is short now: drop its exception"
  for rel in MODULE_EXCEPTIONS:
    with open(os.path.join(os.path.dirname(ROOT), rel)) as f:
      assert sum(1 for _ in f) > MAX_MODULE_LINES, f"{rel} is short now: drop its exception"
