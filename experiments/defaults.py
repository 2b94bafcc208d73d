"""Default experiment settings that every config starts from.

The defaults are the embedded CPU-sized run (configs/mnist5k.py); each config
file changes what differs. The values come from msal_jax/defaults.py, which
msal_jax.ActiveLearner reads too: a setting left out means the same there and
here. Every field can be overridden on the command line:
``--config.al.budget=1000``, ``--config.strategies="('msal', 'msal_d')"``.
"""

import ml_collections

from msal_jax.defaults import AL, CHECKPOINT, MODEL, TRAIN  # shared with msal_jax.ActiveLearner

# What `get_config(arg)` of a paper config gives: `--config=configs/svhn.py` is the
# paper's protocol, `--config=configs/svhn.py:cpu` a small-CNN variant sized for a CPU.
VARIANTS = ("paper", "cpu")


def variant(arg: str | None) -> str:
  """The variant named by a config file's argument (None or "" = ``"paper"``)."""
  name = arg or "paper"
  if name not in VARIANTS:
    raise ValueError(
        f"config variant {arg!r}: allowed {', '.join(VARIANTS)} "
        "(e.g. --config=configs/svhn.py:cpu)."
    )
  return name


def cpu_sized(
    config: ml_collections.ConfigDict, *, initial: int, batch: int, budget: int, epochs: int
) -> ml_collections.ConfigDict:
  """A paper config made CPU-sized: the small CNN, fewer labels, fewer epochs.

  The radius becomes the small CNN's (``MODEL.rho`` = 1): the paper's 0.1 for
  MNIST is a ResNet18 value, and on the small CNN rho = 0.1 starts several points
  below the linear head where rho = 1 is level with it (docs/results.md, "The
  radius rho", measured with the launcher's ``model.rho`` sweep).
  """
  config.model.arch = MODEL.arch
  config.model.rho = MODEL.rho
  config.model.trunk = ml_collections.ConfigDict(dict(MODEL.trunk))
  config.al.initial = initial
  config.al.batch = batch
  config.al.budget = budget
  config.train.epochs = epochs
  return config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist5k"
  config.data.source = "embedded"
  config.data.dir = ml_collections.config_dict.placeholder(str)
  # Your own data (docs/custom.md): source "npz" reads data.path; "npy" (a folder of
  # .npy files) and "folder" (train/<class>/, test/<class>/, unlabeled/) read data.dir.
  config.data.path = ml_collections.config_dict.placeholder(str)
  config.data.class_names = ml_collections.config_dict.placeholder(tuple)  # default "0", "1", ...
  config.data.image_size = ml_collections.config_dict.placeholder(tuple)  # folder: (H, W)
  config.data.channels = ml_collections.config_dict.placeholder(int)  # folder: 1 or 3; None: auto
  # Bytes of pool pixels (N * H * W * Ch) above which the pool stays on disk and is streamed
  # through the network each round (docs/out_of_core.md): sources npy, npz, folder, tfds.
  # None: msal_jax.pool_source.IN_MEMORY_LIMIT_BYTES (4 GiB); 0: always stream.
  config.data.in_memory_limit = ml_collections.config_dict.placeholder(int)
  # Long-tailed pool (msal_jax.data.longtail): smallest / largest class size, e.g. 0.01;
  # None = the pool as it is. imbalance_seed picks which samples each class keeps.
  config.data.imbalance = ml_collections.config_dict.placeholder(float)
  config.data.imbalance_seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.arch = MODEL.arch
  config.model.rho = MODEL.rho  # the small CNN's radius
  config.model.dropout_rate = MODEL.dropout_rate
  config.model.trunk = ml_collections.ConfigDict(dict(MODEL.trunk))
  # Your own Flax module instead of model.arch: "package.module:Name" or "path/file.py:Name",
  # built with model.kwargs; it returns features (the head is added) or (logits, features).
  config.model.module = ml_collections.config_dict.placeholder(str)
  config.model.kwargs = ml_collections.ConfigDict()

  config.al = ml_collections.ConfigDict()
  config.al.initial = AL.initial
  config.al.batch = AL.batch
  config.al.budget = AL.budget
  config.al.rounds = ml_collections.config_dict.placeholder(int)  # None: ceil(budget / batch)
  config.al.beta = AL.beta
  config.al.mc_passes = AL.mc_passes  # T, passes of the MC-dropout strategies
  config.al.ceal_delta = AL.ceal_delta  # CEAL: entropy threshold delta_0 ...
  config.al.ceal_decay = AL.ceal_decay  # ... minus this times t after query t (cumulative)
  config.al.ceal_cos = AL.ceal_cos  # CEAL(MSAL): pseudo-label when cos to nearest prototype > this
  # Human in the loop: each round writes queries/round_<r>.csv and stops; fill in the labels
  # and run the same command again to continue (one strategy, one seed).
  config.al.hitl = False
  # A simulated annotator instead of the dataset's labels: "package.module:make" or
  # "path/file.py:make", called per run as make(labels=, num_classes=, seed=, **oracle_kwargs)
  # and returning oracle(ids) -> labels (examples/noisy_oracle.py: a noisy annotator).
  config.al.oracle = ml_collections.config_dict.placeholder(str)
  config.al.oracle_kwargs = ml_collections.ConfigDict()

  config.train = ml_collections.ConfigDict()
  config.train.epochs = TRAIN.epochs  # few labels: enough steps for both heads to converge
  config.train.batch_size = TRAIN.batch_size
  config.train.learning_rate = TRAIN.learning_rate
  config.train.eval_batch_size = TRAIN.eval_batch_size
  config.train.augment = TRAIN.augment  # random 4-pixel crop + flip (CIFAR, TinyImageNet)

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.max_to_keep = CHECKPOINT.max_to_keep  # per run (resume needs the last)

  config.report = ml_collections.ConfigDict()
  # Rounds whose pool embeddings are saved for the t-SNE figure (paper Fig. 2),
  # e.g. (1, 5); empty: nothing saved, no cost.
  config.report.tsne_rounds = ()
  config.report.tsne_points = 2000  # pool samples per saved round, plus that round's queries

  # Sweep one field of al / train / model, e.g. --config.sweep.field=al.beta
  # --config.sweep.values="(2, 5, 10)": runs <strategy>/al.beta=<value>/seed_<k>/,
  # and the report plots AUBC and F-acc against the value (paper Figs. 4-5).
  config.sweep = ml_collections.ConfigDict()
  config.sweep.field = ml_collections.config_dict.placeholder(str)
  config.sweep.values = ()

  # Devices (docs/devices.md). mesh.devices: None = every device of the default backend, one
  # run data-parallel over them; 1 = one device; k = the first k. mesh.devices_per_run: None =
  # each run uses all of mesh.devices; k = the grid's runs side by side, each on its own
  # group of k of them (one thread per group).
  config.mesh = ml_collections.ConfigDict()
  config.mesh.devices = ml_collections.config_dict.placeholder(int)
  config.mesh.devices_per_run = ml_collections.config_dict.placeholder(int)

  config.strategies = ("random", "entropy", "msal", "msal_d")
  config.seeds = (0, 1)
  return config
