#!/usr/bin/env bash
# The GPU checks of the benchmarks issue as one prepared run, for a session that is lent
# a GPU machine (docs/benchmarks.md, "When a GPU is lent"). Run from the repository root:
#
#   bash benchmarks/device_check.sh                 # on the GPU machine: at most 9 min
#   QUICK=1 bash benchmarks/device_check.sh         # a smoke run of every step (2-core CPU: 3 min)
#
# Steps, each with its own time limit so that one slow step cannot eat the others':
#   0. install carried wheels (.whl/*.whl, if any) and print the machine;
#   1. correctness on that backend: tests of the scores, the selections, the streamed
#      path and the models (the pooling gradient is compared with select-and-scatter);
#   2. benchmarks/selection.py: MSAL-D and entropy on 1M and 10M pools (msal-jax on the
#      device, numpy and PyTorch references on the host CPU);
#   3. benchmarks/models.py: inference and train step images/s, XLA's FLOPs per image
#      (for the roofline), PyTorch on CUDA when it has it;
#   4. benchmarks/devices.py (issue 18): one round of the CPU-sized MNIST config (the
#      embedded mnist5k) on 1 device and over a mesh of every device (up to 8), and 8
#      runs side by side (mesh.devices_per_run=1) against one after another; a machine
#      with one accelerator times the one-device run only (the script says so);
#   5. the paper-protocol MNIST run (ResNet18, 500 + 40 x 250, 20 epochs), MSAL-D,
#      seed 0, on the idx files in data/mnist (carried, git-ignored), for as long as
#      the time limit allows: every finished round is in rounds.jsonl with its seconds.
# Everything is written under $OUT (default /tmp/device_check): one log per step, the
# finished rounds, and summary.txt.
set -u
OUT=${OUT:-/tmp/device_check}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD

step() {  # step NAME LIMIT_S COMMAND...: run with a limit, log to $OUT/NAME.log, note rc
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc $rc after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>&1
  "$PY" -c "import jax, numpy; print('jax', jax.__version__, jax.devices(), 'numpy', numpy.__version__)"
  nproc
} 2>&1 | tee "$OUT/summary.txt"

if [ "$QUICK" = 1 ]; then
  step tests 600 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_scoring.py \
    tests/test_selection.py -k "not large"
  step selection 300 "$PY" benchmarks/selection.py --sizes=100000 --classes=10 --repeats=2 \
    --top-k-blocks=
  step models 600 "$PY" benchmarks/models.py --quick
  step devices 300 "$PY" benchmarks/devices.py --devices=2 --runs=2 --epochs=1 --initial=20 \
    --batch=10
  MNIST_FLAGS=(--config=configs/mnist.py:cpu --config.al.budget=200)
else
  step tests 120 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_scoring.py \
    tests/test_selection.py tests/test_streaming.py tests/test_models.py
  step selection 120 "$PY" benchmarks/selection.py --repeats=3 --top-k-blocks=
  TORCH_DEV=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" \
    2>/dev/null || echo cpu)
  step models 90 "$PY" benchmarks/models.py --torch-device="$TORCH_DEV" --batch=1024 \
    --train-batch=128 --repeats=5
  step devices 90 "$PY" benchmarks/devices.py --devices=8 --runs=8
  MNIST_FLAGS=(--config=configs/mnist.py)
fi

if [ -d data/mnist ]; then
  rm -rf /tmp/mnist_run
  step mnist_paper "${MNIST_LIMIT:-110}" "$PY" -m experiments.run "${MNIST_FLAGS[@]}" \
    --config.data.dir=data/mnist --config.strategies=msal_d --config.seeds=0 \
    --workdir=/tmp/mnist_run
  rounds=$(find /tmp/mnist_run -name rounds.jsonl | head -n 1)
  if [ -n "$rounds" ]; then
    cp "$rounds" "$OUT/mnist_rounds.jsonl"
    "$PY" - "$rounds" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
  print(f"round {r['round']:2d}: {r['num_labeled']:6d} labeled, accuracy {r['test_accuracy']:.4f}, "
        f"train {r['train_seconds']:7.1f} s, eval {r['eval_seconds']:5.1f} s, "
        f"query {r['query_seconds']:5.1f} s")
print(f"{len(rows)} rounds finished, {sum(r['train_seconds'] + r['eval_seconds'] + r['query_seconds'] for r in rows):.1f} s in them")
EOF
  fi
else
  echo "=== mnist_paper: skipped (no data/mnist: copy the idx files there and carry it)" \
    | tee -a "$OUT/summary.txt"
fi
date -u | tee -a "$OUT/summary.txt"
