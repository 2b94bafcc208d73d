"""README.md is true: its example runs as written, and so does every command it shows.

Every shell command in README.md (each line of its ```bash blocks, and each
inline `python ...` / `pip ...`) is either run here, exactly as written, in a
temporary folder (RUN: the test that runs it), or listed in SKIPPED with the
reason; a new command in README.md that is in neither fails
:func:`test_every_command_is_run_or_skipped`.
"""

import ast
import filecmp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

from msal_jax import metrics, query, selection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The launcher run with the example's settings ("The same from a config").
CONFIG_RUN = (
    "python -m experiments.run --config=configs/mnist5k.py --workdir=runs/squares_config "
    "--config.model.module=nets.py:TinyCNN --config.data.source=npz "
    "--config.data.path=squares.npz --config.strategies=msal_d --config.seeds=0 "
    "--config.al.initial=20 --config.al.batch=20 --config.al.budget=60 "
    "--config.train.epochs=15 --config.train.batch_size=32")
HITL_RUN = (
    "python -m experiments.run --config=configs/mnist5k.py --workdir=runs/mine "
    "--config.data.source=folder --config.data.dir=~/my_images --config.al.hitl=True "
    "--config.strategies=msal_d --config.seeds=0 --config.al.batch=20 --config.al.budget=200")
QUERY_RUN = ("python -m msal_jax.query --features=feats.npy --strategy=msal_d --budget=1000 "
             "--labeled_ids=already_labeled.txt --out=to_annotate.csv")
REPORT_RUN = "python -m experiments.report --workdir=DIR"

# command (as README.md writes it, whitespace and quotes normalised) -> the test running it
RUN = {
    "python mine.py": "test_readme_example_runs_as_written",
    CONFIG_RUN: "test_the_same_from_a_config_queries_the_same_samples",
    REPORT_RUN: "test_report_recreates_the_tables_and_figures_byte_for_byte",
    HITL_RUN: "test_human_in_the_loop_command",
    QUERY_RUN: "test_query_commands",
    "python -m msal_jax.query --help": "test_query_commands",
}
# command -> why it is not run here
SKIPPED = {
    "pip install -e . && python -m experiments.run --config=configs/mnist5k.py":
        "installs, then the main job (4 strategies x 2 seeds: minutes, README 'Results')",
    "python -m experiments.run --config=configs/mnist5k.py":
        "the main job (minutes, README 'Results')",
    "pip install -e .[test] && pytest": "installs, then the whole suite (over 10 minutes)",
    "python -m experiments.run --config=configs/<name>.py [--workdir=DIR] "
    "[--config.x.y=value ...]": "a synopsis with placeholders, not a command",
    "pip install -e .[tfds]": "installs TensorFlow (network)",
    "python -c import tensorflow_datasets as tfds; tfds.builder('svhn_cropped', "
    "data_dir='DIR').download_and_prepare(file_format='array_record')":
        "downloads a dataset (network)",
    "pip install -e .[cuda12]": "installs the CUDA wheels (network, a GPU)",
    "python benchmarks/tree_memory.py -- bash .ci/run":
        "the whole suite in a fresh venv (over 10 minutes); tests/test_tree_memory.py runs the "
        "script",
    "python -m experiments.synthetic_data --out=DIR":
        "writes full-size SVHN / CIFAR / Tiny ImageNet files (about a minute, gigabytes)",
    "python -m msal_jax.query": "the program's name in a sentence; its commands are run",
}


def _readme() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read()


def _example() -> str:
  m = re.search(r"<!-- readme-example -->\n```python\n(.*?)```\n<!-- /readme-example -->",
                _readme(), re.S)
  assert m, "README.md lost its marked example"
  return m.group(1)


_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _normalised(command: str) -> str:
  return " ".join(shlex.split(command, comments=True))


def commands_in(text: str) -> dict[str, str]:
  """``{normalised command: the command as written}`` for every command in a Markdown page.

  A ```bash block gives one command per line (``\\`` continuations joined,
  comments dropped); outside the blocks, every inline code span that starts
  with ``python``, ``pip`` or ``pytest``.
  """
  commands = {}
  for m in _FENCE.finditer(text):
    if m.group(1) != "bash":
      continue
    for line in re.sub(r"\s*\\\n\s*", " ", m.group(2)).splitlines():
      if line.strip() and not line.strip().startswith("#"):
        commands[_normalised(line)] = line.split(" #")[0].strip()
  for m in re.finditer(r"`([^`]+)`", _FENCE.sub("", text)):
    span = " ".join(m.group(1).split())
    if re.match(r"(python3?|pip|pytest)\b", span):
      commands[_normalised(span)] = span
  return commands


def readme_commands() -> dict[str, str]:
  return commands_in(_readme())


def test_commands_are_found():
  # The parser, on a hand-made page: continuation, comments, inline spans, other blocks.
  page = ("x `python -m a --b=1` y `--not=this`\n```bash\n# a comment\n"
          "python -m c \\\n   --d='e f'   # why\npip install g\n```\n"
          "```python\nimport h\n```\n`pip  install\n i`\n")
  assert commands_in(page) == {
      "python -m c --d=e f": "python -m c --d='e f'", "pip install g": "pip install g",
      "python -m a --b=1": "python -m a --b=1", "pip install i": "pip install i"}


def test_every_command_is_run_or_skipped():
  commands = set(readme_commands())
  unknown = commands - RUN.keys() - SKIPPED.keys()
  assert not unknown, f"README.md commands neither run nor skipped here: {sorted(unknown)}"
  stale = (RUN.keys() | SKIPPED.keys()) - commands
  assert not stale, f"listed here but no longer in README.md: {sorted(stale)}"
  assert not RUN.keys() & SKIPPED.keys()
  assert set(RUN.values()) <= set(globals()), "RUN names a test that does not exist"


def _as_written(key: str) -> str:
  return readme_commands()[key]


def _shell(command: str, cwd, timeout: int = 300, **env) -> subprocess.CompletedProcess:
  """``command`` run by bash in ``cwd``, with this interpreter's ``python`` first on PATH."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
             PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), **env)
  return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
  """README's example run as written (``python mine.py``) in a fresh folder."""
  tmp = tmp_path_factory.mktemp("readme")
  (tmp / "mine.py").write_text(_example())
  proc = _shell(_as_written("python mine.py"), tmp, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return tmp, proc


@pytest.fixture(scope="module")
def config_run(example):
  """README's launcher command with the example's settings, beside the example's files."""
  tmp, _ = example
  src = _example()  # nets.py: the example's imports and its class, as README says
  keep = [node for node in ast.parse(src).body if isinstance(node, (ast.Import, ast.ImportFrom))
          or (isinstance(node, ast.ClassDef) and node.name == "TinyCNN")]
  (tmp / "nets.py").write_text("\n".join(ast.get_source_segment(src, n) for n in keep) + "\n")
  if not (tmp / "configs").exists():
    (tmp / "configs").symlink_to(os.path.join(ROOT, "configs"))
  proc = _shell(_as_written(CONFIG_RUN), tmp, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return tmp / "runs" / "squares_config"


def _rounds(workdir):
  with open(workdir / "rounds.jsonl") as f:
    return [json.loads(line) for line in f]


def test_readme_example_runs_as_written(example):
  tmp, proc = example
  with open(tmp / "runs" / "squares" / "summary.json") as f:
    summary = json.load(f)
  accs = summary["accuracies"]
  assert len(accs) == 4 and all(0.0 <= a <= 1.0 for a in accs)
  assert summary["aubc"] == pytest.approx(metrics.aubc(accs, budget=60, batch=20), abs=1e-12)
  assert f"accuracy per round: {[round(a, 3) for a in accs]}" in proc.stdout
  rounds = _rounds(tmp / "runs" / "squares")
  assert [r["num_labeled"] for r in rounds] == [20, 40, 60, 80]
  assert (tmp / "runs" / "squares" / "results.md").exists()


def test_the_same_from_a_config_queries_the_same_samples(example, config_run):
  # The API and the launcher share their defaults (msal_jax.defaults): the same
  # settings written either way query the same ids, round by round.
  tmp, _ = example
  api_rounds, config_rounds = _rounds(tmp / "runs" / "squares"), _rounds(config_run)
  assert [r["queried"] for r in config_rounds] == [r["queried"] for r in api_rounds]
  assert [len(r["queried"]) for r in api_rounds] == [20, 20, 20, 0]
  assert [r["test_accuracy"] for r in config_rounds] == [r["test_accuracy"] for r in api_rounds]


def test_report_recreates_the_tables_and_figures_byte_for_byte(config_run, tmp_path):
  workdir = tmp_path / "copy"
  shutil.copytree(config_run, workdir)
  written = ["results.md", "results.csv", "timing.md", "timing.csv", "curves.png",
             "error_rate.png", "report.md"]
  for name in written:
    os.remove(workdir / name)
  proc = _shell(_as_written(REPORT_RUN).replace("DIR", str(workdir)), tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  match, mismatch, errors = filecmp.cmpfiles(config_run, workdir, written, shallow=False)
  assert (mismatch, errors) == ([], [])


def _square(rng, cls):
  image = rng.integers(0, 80, (8, 8), dtype=np.uint8)
  image[:, 2 * cls:2 * cls + 3] += 150
  return image


def test_human_in_the_loop_command(tmp_path):
  from PIL import Image

  rng = np.random.default_rng(0)
  classes = ("cat", "dog", "owl")
  images = tmp_path / "my_images"  # ~/my_images, with HOME = tmp_path
  for split in ("train", "test"):
    for c, name in enumerate(classes):
      os.makedirs(images / split / name)
      for i in range(8):
        Image.fromarray(_square(rng, c)).save(images / split / name / f"{i}.png")
  os.makedirs(images / "unlabeled")
  for i in range(200):
    Image.fromarray(_square(rng, i % 3)).save(images / "unlabeled" / f"img_{i:04d}.png")
  (tmp_path / "configs").symlink_to(os.path.join(ROOT, "configs"))
  command = _as_written(HITL_RUN)
  proc = _shell(command, tmp_path, HOME=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  queries = tmp_path / "runs" / "mine" / "queries"
  rows = (queries / "round_000.csv").read_text().splitlines()
  assert rows[0] == "id,path,label" and len(rows) == 1 + 20  # --config.al.batch=20
  # "fill in runs/mine/queries/round_000.csv, then the same command again"
  filled = [rows[0]]
  for row in rows[1:]:
    ids, path, label = row.split(",")
    assert path.startswith("unlabeled/img_") and label == ""
    filled.append(f"{ids},{path},{classes[int(path[len('unlabeled/img_'):-4]) % 3]}")
  (queries / "round_000.csv").write_text("\n".join(filled) + "\n")
  proc = _shell(command, tmp_path, HOME=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (queries / "round_001.csv").exists()
  assert [r["num_labeled"] for r in _rounds(tmp_path / "runs" / "mine")] == [24, 44]


def test_query_commands(tmp_path):
  rng = np.random.default_rng(3)
  n, classes = 3_000, 10
  z = (rng.normal(size=(n, classes - 1)) * rng.uniform(0.2, 5.0, (n, 1))).astype(np.float32)
  np.save(tmp_path / "feats.npy", z)
  labeled = rng.random(n) < 0.1
  (tmp_path / "already_labeled.txt").write_text(
      "id\n" + "\n".join(str(i) for i in np.flatnonzero(labeled)) + "\n")
  proc = _shell(_as_written(QUERY_RUN), tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = (tmp_path / "to_annotate.csv").read_text().split()
  want = selection.msal_d(z, None, labeled, budget=1000, beta=5.0)  # the in-memory MSAL-D
  assert lines[0] == "id" and [int(i) for i in lines[1:]] == np.asarray(want).tolist()

  proc = _shell(_as_written("python -m msal_jax.query --help"), tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith(query.__doc__.strip().splitlines()[0])
  for flag in re.findall(r"(--\w+)=", QUERY_RUN):
    assert f"  {flag}: " in proc.stdout, flag  # README's flags are the program's
