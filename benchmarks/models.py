r"""Model speed on the CPU: msal-jax's small CNN and ResNet18 against the same nets in PyTorch.

  python benchmarks/models.py                             # both models, inference + train step
  python benchmarks/models.py --quick                     # a smoke run (under a minute)
  python benchmarks/models.py --models=small_cnn --batch=1024 --repeats=30
  python benchmarks/models.py --threads=1                 # XLA and torch on one thread each
  python benchmarks/models.py --torch-channels-last       # torch in NHWC (channels_last) too
  python benchmarks/models.py --input=cifar --models=resnet18   # 32x32x3, the 3x3 stem
  XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/models.py   # an XLA:CPU variant

On 28x28x1 MNIST-shaped uint8 images (random pixels, 10 classes, the max-separation
head with rho = 0.1 as the MNIST configs use; --input=cifar: 32x32x3 and ResNet18's
3x3 stride-1 stem, as the CIFAR configs use) it times two phases per model:
  * infer: pool inference, images/s. msal-jax: ``Trainer.predict`` (the jitted
    ``eval_step``: gather, normalise, forward, BatchNorm on running averages) over a
    pool of --batch images, i.e. one eval batch of --batch; PyTorch: the same gather +
    normalise + forward under ``torch.inference_mode`` with the module in ``eval()``.
  * train: Adam (lr 1e-3) steps of softmax cross-entropy on --train-batch images,
    images/s. msal-jax: ``Trainer.fit`` for one epoch of --train-steps steps (the
    library's jitted, state-donating train step plus its per-epoch shuffle and one
    host sync); PyTorch: the same number of ``zero_grad / forward / backward /
    Adam.step`` iterations on batches gathered and normalised the same way.
The first call of each (compilation for XLA, first-touch allocation for torch) is timed
separately ("first s"); the throughput is the median over --repeats timed calls after
it, msal-jax and PyTorch alternating call by call so that a change of the machine's load
hits both. The ratio is jax / torch images/s (> 1: msal-jax faster).

The PyTorch modules are written here with the same layers, widths, strides, paddings and
initialisation-independent shapes; the script checks that both have the same number of
trainable parameters and prints them:
  * small CNN (the CPU configs' trunk: widths (16, 32), hidden 64): conv3x3 (pad 1) ->
    ReLU -> maxpool 2 per width, flatten, Dense(64), ReLU, head. One difference: torch
    flattens [C, H, W], Flax [H, W, C] (a permutation of the same weights, same cost).
  * ResNet18 ("imagenet" stem, as configs/mnist.py): 1x1 conv with bias 1 -> 3
    channels, 7x7/2 conv (pad 3), BatchNorm, ReLU, 3x3/2 max-pool (pad 1), BasicBlocks
    [2, 2, 2, 2] of widths 64-512 with projected shortcuts, global average pooling,
    head. BatchNorm: torch momentum 0.1 = Flax momentum 0.9, eps 1e-5; the running
    variance is unbiased in torch and biased in Flax (same cost).
  * head: Dense(C-1), logits = rho * z @ P^T with the fixed simplex prototypes P.
Both frameworks get float32 NCHW (torch) / NHWC (Flax) inputs in their native layout;
--torch-channels-last moves torch to NHWC as well.

Threads: --threads=0 (default) keeps the libraries' defaults (XLA:CPU sizes its pool to
the machine's cores, torch uses one thread per core); --threads=1 runs both on one
thread (XLA flags as in benchmarks/strategies.py, torch.set_num_threads(1)); --threads=N
> 1 sets torch's threads only (XLA has no flag for a pool size). Other XLA flags come in
through the XLA_FLAGS environment variable and are printed in the header. On a shared
machine whose load average exceeds its cores, torch's default OpenMP threads slow it down
5-9x (XLA hardly changes): compare frameworks there with --threads=1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np

MODELS = ("small_cnn", "resnet18")
# Per-model defaults: (timed repeats, train steps per timed call) -- ResNet18 is slow on a CPU.
DEFAULTS = {"small_cnn": (15, 4), "resnet18": (5, 1)}
# --input: image shape, normalisation, ResNet18 stem (as the configs of that data use).
INPUTS = {
    "mnist": {"shape": (28, 28, 1), "mean": (0.1307,), "std": (0.3081,), "stem": "imagenet"},
    "cifar": {"shape": (32, 32, 3), "mean": (0.4914, 0.4822, 0.4465),
              "std": (0.2470, 0.2435, 0.2616), "stem": "cifar"},
}
NUM_CLASSES, RHO = 10, 0.1
SMALL_CNN = {"widths": (16, 32), "hidden": 64}  # experiments.defaults.cpu_sized


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter
  )
  parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
  parser.add_argument("--batch", type=int, default=None,
                      help="inference batch (default 512; --quick 128)")
  parser.add_argument("--train-batch", type=int, default=128)
  parser.add_argument("--train-steps", type=int, default=None,
                      help="train steps per timed call (default: small_cnn 4, resnet18 1)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed calls per (model, phase) and framework (default: small_cnn "
                      "15, resnet18 5; --quick 2)")
  parser.add_argument("--threads", type=int, default=0,
                      help="0: library defaults; 1: one thread each; N: torch threads")
  parser.add_argument("--torch-channels-last", action="store_true",
                      help="run the torch models and inputs in channels_last (NHWC)")
  parser.add_argument("--input", default="mnist", choices=sorted(INPUTS),
                      help="mnist: 28x28x1, ResNet18 7x7 stem (default); cifar: 32x32x3, 3x3 stem")
  parser.add_argument("--torch-device", default="cpu",
                      help="where the PyTorch twins run: cpu (default) or cuda (on a GPU host)")
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  bad = [m for m in args.models if m not in MODELS]
  if bad:
    parser.error(f"unknown model(s) {bad}; allowed: {', '.join(MODELS)}")
  if args.batch is None:
    args.batch = 128 if args.quick else 512
  return args


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads == 1:  # before the XLA backend starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from msal_jax import prototypes  # noqa: E402
from msal_jax.models import make_model  # noqa: E402
from msal_jax.train import Trainer  # noqa: E402

# ---------------------------------------------------------------------------
# the PyTorch twins
# ---------------------------------------------------------------------------


class TorchMaxSepHead(nn.Module):
  """``z = Linear(D, C-1)(h)``, ``logits = rho * z @ P^T`` (P a buffer, not a parameter)."""

  def __init__(self, dim, num_classes, rho):
    super().__init__()
    self.dense = nn.Linear(dim, num_classes - 1)
    self.rho = rho
    self.register_buffer("protos", torch.from_numpy(np.array(prototypes.simplex(num_classes))))

  def forward(self, h):
    return self.rho * (self.dense(h) @ self.protos.T)


class TorchSmallCNN(nn.Module):
  def __init__(self, widths, hidden, num_classes, rho, size=28, channels=1):
    super().__init__()
    convs, cin = [], channels
    for w in widths:
      convs.append(nn.Conv2d(cin, w, 3, padding=1))
      cin = w
      size //= 2
    self.convs = nn.ModuleList(convs)
    self.dense = nn.Linear(cin * size * size, hidden)
    self.head = TorchMaxSepHead(hidden, num_classes, rho)

  def forward(self, x):
    for conv in self.convs:
      x = F.max_pool2d(F.relu(conv(x)), 2, 2)
    return self.head(F.relu(self.dense(torch.flatten(x, 1))))


def _bn(c):
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class TorchBasicBlock(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = _bn(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = _bn(cout)
    self.down = None
    if stride != 1 or cin != cout:
      self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), _bn(cout))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu((x if self.down is None else self.down(x)) + y)


class TorchResNet18(nn.Module):
  """msal_jax.models.ResNet18 (torchvision's resnet18 minus fc; the "cifar" stem: 3x3/1)."""

  def __init__(self, num_classes, rho, channels=1, stem="imagenet"):
    super().__init__()
    self.gray_to_rgb = nn.Conv2d(channels, 3, 1) if channels == 1 else nn.Identity()
    self.stem_conv = (nn.Conv2d(3, 64, 7, 2, 3, bias=False) if stem == "imagenet"
                      else nn.Conv2d(3, 64, 3, 1, 1, bias=False))
    self.stem_bn = _bn(64)
    blocks, cin = [], 64
    for stage, width in enumerate((64, 128, 256, 512)):
      for block in range(2):
        blocks.append(TorchBasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
        cin = width
    self.blocks = nn.Sequential(*blocks)
    self.head = TorchMaxSepHead(512, num_classes, rho)

  def forward(self, x):
    x = F.relu(self.stem_bn(self.stem_conv(self.gray_to_rgb(x))))
    x = F.max_pool2d(x, 3, 2, 1)
    x = self.blocks(x)
    return self.head(x.mean((2, 3)))


def torch_model(name, inp):
  size, _, channels = inp["shape"]
  if name == "small_cnn":
    return TorchSmallCNN(SMALL_CNN["widths"], SMALL_CNN["hidden"], NUM_CLASSES, RHO, size=size,
                         channels=channels)
  return TorchResNet18(NUM_CLASSES, RHO, channels=channels, stem=inp["stem"])


def jax_model(name, inp):
  kwargs = SMALL_CNN if name == "small_cnn" else {"stem": inp["stem"]}
  return make_model(name, num_classes=NUM_CLASSES, head="max_sep", rho=RHO, **kwargs)


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def _timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def interleaved(fn_jax, fn_torch, repeats):
  """(first-call s, median s) for each of the two; timed calls alternate jax / torch."""
  first = (_timed(fn_jax), _timed(fn_torch))
  times = ([], [])
  for _ in range(repeats):
    times[0].append(_timed(fn_jax))
    times[1].append(_timed(fn_torch))
  return first, (statistics.median(times[0]), statistics.median(times[1]))


class Bench:
  """Both frameworks' models and inputs for one architecture."""

  def __init__(self, name, args, train_steps):
    self.name, self.args, self.steps = name, args, train_steps
    rng = np.random.default_rng(0)
    self.pool = max(args.batch, args.train_batch * train_steps)
    self.inp = inp = INPUTS[args.input]
    images = rng.integers(0, 256, (self.pool, *inp["shape"]), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, self.pool).astype(np.int32)
    # msal-jax: the library's Trainer on device-resident uint8 images.
    self.trainer = Trainer(jax_model(name, inp), image_shape=inp["shape"], mean=inp["mean"],
                           std=inp["std"], learning_rate=1e-3, batch_size=args.train_batch,
                           eval_batch_size=args.batch)
    self.state = self.trainer.init(jax.random.key(0))
    self.images, self.labels = jnp.asarray(images), jnp.asarray(labels)
    self.infer_images = self.images[:args.batch]
    labeled = np.zeros(self.pool, bool)
    labeled[:args.train_batch * train_steps] = True
    self.labeled = jnp.asarray(labeled)
    self.epoch = 0
    # PyTorch: the same uint8 pool, NCHW.
    self.memory_format = torch.channels_last if args.torch_channels_last else \
        torch.contiguous_format
    self.t_device = torch.device(args.torch_device)
    self.t_model = torch_model(name, inp).to(self.t_device, memory_format=self.memory_format)
    self.t_opt = torch.optim.Adam(self.t_model.parameters(), lr=1e-3)
    self.t_images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(self.t_device)
    self.t_labels = torch.from_numpy(labels).long().to(self.t_device)
    self.t_mean = torch.tensor(inp["mean"], device=self.t_device).view(1, -1, 1, 1)
    self.t_std = torch.tensor(inp["std"], device=self.t_device).view(1, -1, 1, 1)
    self.t_gen = torch.Generator().manual_seed(0)

  def param_counts(self):
    jax_n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params))
    torch_n = sum(p.numel() for p in self.t_model.parameters() if p.requires_grad)
    return jax_n, torch_n

  def check_shapes(self):
    logits_j, _ = self.trainer.predict(self.state, self.images[:4])
    self.t_model.eval()
    with torch.inference_mode():
      logits_t = self.t_model(self._t_batch(torch.arange(4)))
    assert tuple(logits_j.shape) == tuple(logits_t.shape) == (4, NUM_CLASSES), \
        (logits_j.shape, logits_t.shape)

  def _t_sync(self):
    if self.t_device.type == "cuda":
      torch.cuda.synchronize(self.t_device)

  def flops_per_image(self):
    """XLA's cost analysis of the jax model: (forward, forward + backward) FLOPs per image.

    Of the compiled forward pass on the inference batch and of the gradient of a
    cross-entropy loss on the train batch (the optimizer update, a few FLOPs per
    parameter, is left out); ``nan`` where the backend reports no count.
    """
    variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
    model = self.trainer.model
    x = jnp.zeros((self.args.batch, *self.inp["shape"]), jnp.float32)
    xt = jnp.zeros((self.args.train_batch, *self.inp["shape"]), jnp.float32)
    yt = jnp.zeros((self.args.train_batch,), jnp.int32)

    def loss(params):
      (logits, _), _ = model.apply({**variables, "params": params}, xt, train=True,
                                   mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yt[:, None], axis=1))

    def flops(fn, *a):
      cost = jax.jit(fn).lower(*a).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      return float((cost or {}).get("flops", float("nan")))

    fwd = flops(lambda v, x: model.apply(v, x, train=False), variables, x) / self.args.batch
    bwd = flops(jax.grad(loss), self.state.params) / self.args.train_batch
    return fwd, bwd

  def _t_batch(self, idx):
    idx = idx.to(self.t_device)
    x = self.t_images[idx].float().div_(255.0).sub_(self.t_mean).div_(self.t_std)
    return x.contiguous(memory_format=self.memory_format)

  # -- inference ----------------------------------------------------------------

  def jax_infer(self):
    jax.block_until_ready(self.trainer.predict(self.state, self.infer_images))

  def torch_infer(self):
    self.t_model.eval()
    with torch.inference_mode():
      self.t_model(self._t_batch(torch.arange(self.args.batch)))
    self._t_sync()

  # -- training -----------------------------------------------------------------

  def jax_train(self):
    self.epoch += 1
    self.state, _ = self.trainer.fit(self.state, self.images, self.labels, self.labeled,
                                     epochs=1, key=jax.random.key(self.epoch))
    jax.block_until_ready(self.state)

  def torch_train(self):
    self.t_model.train()
    n, bs = self.args.train_batch * self.steps, self.args.train_batch
    order = torch.randperm(n, generator=self.t_gen)
    for i in range(self.steps):
      idx = order[i * bs:(i + 1) * bs]
      self.t_opt.zero_grad(set_to_none=True)
      loss = F.cross_entropy(self.t_model(self._t_batch(idx)),
                             self.t_labels[idx.to(self.t_device)])
      loss.backward()
      self.t_opt.step()
    self._t_sync()
    if not torch.isfinite(loss):
      raise FloatingPointError(f"torch {self.name}: loss {loss}")


def _cpu_name():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def main() -> None:
  args = ARGS
  if args.threads > 0:
    torch.set_num_threads(args.threads)
  load = " ".join(f"{x:.2f}" for x in os.getloadavg())
  xla_flags = os.environ.get("XLA_FLAGS", "").strip() or "none"
  print(f"date {datetime.datetime.now():%Y-%m-%d %H:%M}; {platform.node()}, {_cpu_name()}, "
        f"{os.cpu_count()} CPUs; load average {load} (1/5/15 min) at start")
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
        f"XLA_FLAGS {xla_flags}; torch {torch.__version__} on {args.torch_device} "
        f"({torch.get_num_threads()} threads, mkldnn "
        f"{torch.backends.mkldnn.is_available()}, "
        f"{'channels_last' if args.torch_channels_last else 'NCHW'}); input {args.input} "
        f"{INPUTS[args.input]['shape']}; infer batch {args.batch}, "
        f"train batch {args.train_batch}; max-sep head, rho {RHO}, C = {NUM_CLASSES}")
  header = (f"{'model':>9} {'phase':>5} {'batch':>7} | {'first s jax':>11} {'torch':>7} | "
            f"{'msal-jax img/s':>14} {'torch img/s':>11} | {'jax/torch':>9} | "
            f"{'jax TFLOP/s':>11}")
  rows = []
  for name in args.models:
    repeats, steps = DEFAULTS[name]
    if args.quick:
      repeats, steps = 2, 1
    steps = args.train_steps or steps
    repeats = args.repeats or repeats
    bench = Bench(name, args, steps)
    jax_n, torch_n = bench.param_counts()
    print(f"{name}: trainable parameters msal-jax {jax_n:,}, torch {torch_n:,}"
          f"{'' if jax_n == torch_n else '  <-- MISMATCH'}; {repeats} timed calls, "
          f"{steps} train step(s) per call", flush=True)
    if jax_n != torch_n:
      raise SystemExit(f"{name}: parameter counts differ, the comparison would not be fair.")
    bench.check_shapes()
    flops = bench.flops_per_image()
    print(f"  XLA cost analysis: {flops[0] / 1e9:.3f} GFLOP per image forward, "
          f"{flops[1] / 1e9:.3f} GFLOP per image forward + backward", flush=True)
    for phase in ("infer", "train"):
      if phase == "infer":
        first, med = interleaved(bench.jax_infer, bench.torch_infer, repeats)
        n_img = args.batch
        batch = f"{args.batch}"
      else:
        first, med = interleaved(bench.jax_train, bench.torch_train, repeats)
        n_img = args.train_batch * steps
        batch = f"{args.train_batch}x{steps}"
      rows.append((name, phase, batch, first, n_img / med[0], n_img / med[1],
                   flops[0] if phase == "infer" else flops[1]))
      print(f"  {phase}: done (load average {os.getloadavg()[0]:.2f})", flush=True)
    del bench
  print()
  print(header)
  print("-" * len(header))
  for name, phase, batch, first, ips_j, ips_t, flop in rows:
    print(f"{name:>9} {phase:>5} {batch:>7} | {first[0]:>11.2f} {first[1]:>7.2f} | "
          f"{ips_j:>14,.0f} {ips_t:>11,.0f} | {ips_j / ips_t:>9.2f} | "
          f"{ips_j * flop / 1e12:>11.4f}")
  print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
  main()
