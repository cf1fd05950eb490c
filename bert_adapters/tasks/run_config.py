"""The settings every runner shares: base encoder, tuning, optimisation, hardware.

Each task kind extends `RunConfig` with its own data fields
(`tasks.classification.ClassifierConfig`, `tasks.squad.SquadConfig`) and
names its task kind; `trainer.run` takes any of them.
"""

import dataclasses
import os
from typing import ClassVar, Optional, Tuple, Union

from bert_adapters.model.layer_span import format_layer_span, parse_layer_span

# Settings that name a local file or directory (or a remote one, `gs://...`).
PATH_FIELDS = frozenset({
    "encoder", "init_checkpoint", "bert_config_file", "vocab_file", "data_dir",
    "tfds_data_dir", "train_file", "dev_file", "test_file", "predict_file"})


def same_setting(field, old, new):
    """Whether a recorded value of setting `field` and a new one are the same.

    Equal values are; so are two spellings of one local path
    (`../data/RTE` and `/srv/data/RTE` run from `/srv/code`), so that resuming or
    growing a sweep from another directory keeps its finished runs. Paths
    resolve against the current directory; remote paths (`gs://`) and other
    settings compare as written.
    """
    old, new = (list(v) if isinstance(v, tuple) else v for v in (old, new))
    if old == new:
        return True
    if (field in PATH_FIELDS and isinstance(old, str) and isinstance(new, str)
            and "://" not in old + new):
        return os.path.realpath(os.path.expanduser(old)) == \
            os.path.realpath(os.path.expanduser(new))
    return False


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of `training.run` shared by every task kind.

    Defaults are BERT's and the paper's: batch 32, max_seq_length 128,
    warm-up over 10% of the steps then linear decay, BERT's AdamWeightDecay.
    A subclass adds its data fields and `task_kind()`.
    """

    # --- base encoder ---
    encoder: Optional[str] = None           # alias, TF Hub handle, checkpoint/preset/HF dir
    init_checkpoint: Optional[str] = None   # BERT's TF1 triple
    bert_config_file: Optional[str] = None
    vocab_file: Optional[str] = None
    # BERT's --do_lower_case: None takes the checkpoint's casing; a value
    # that contradicts the vocabulary's casing stops the run.
    do_lower_case: Optional[bool] = None
    task_dir: Optional[str] = None          # reload an earlier run's task artifact
    # --- tuning (paper section 3) ---
    tuning: str = "adapters"
    num_tuned_layers: Optional[int] = None  # top_k only
    adapter_size: Optional[int] = None      # None with tuning=adapters means 64
    adapter_init_scale: float = 1e-2        # paper 1e-2; authors' code 1e-3
    # Adapters (and trained LayerNorms) only in layers i..j: "i-j", 1-based,
    # inclusive; None: every layer. The layers below i are frozen and keep
    # no activations for the backward pass (`model/bert_encoder.py`).
    adapter_layers: Optional[str] = None
    # --- optimisation ---
    max_seq_length: int = 128
    train_batch_size: int = 32
    eval_batch_size: int = 32
    learning_rate: float = 3e-4
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    optimizer: str = "bert_adam"
    weight_decay: float = 0.01
    seed: int = 42
    max_train_steps: Optional[int] = None   # caps a run (smoke tests)
    # Batches of similar lengths (groups of 50 batches sorted by length): less
    # padding, same examples per epoch. Off by default to match BERT's order.
    group_by_length: bool = False
    # Several short examples per row (block-diagonal attention, positions
    # restarting per example, each example's own [CLS]): the same examples
    # and loss per step with fewer padded tokens. Classification only.
    pack_sequences: bool = False
    # Dropout masks from 16 random bits per element (half the random-number
    # work; rate rounded to a multiple of 2^-16): `bert_adapters/ops/dropout.py`.
    fast_dropout: bool = False
    # --- what to do ---
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    # --- hardware ---
    distribution_strategy: str = "one_device"
    tpu: Optional[str] = None
    # Where a Cloud TPU named by `tpu` lives (BERT's --tpu_zone, --gcp_project);
    # None: the resolver asks the GCE metadata server.
    tpu_zone: Optional[str] = None
    gcp_project: Optional[str] = None
    num_gpus: Optional[int] = None
    # Replicas trained on one machine's CPU, each on its share of every batch
    # and its own core(s) (`distribution.split_cpu`); "auto": one per core on
    # small CPUs (`distribution.cpu_replicas_for`). The same masks and, up to
    # float rounding, the same run as one device.
    cpu_replicas: Union[int, str] = 1
    mixed_precision: Optional[str] = None   # None, "bf16" or "fp16"
    # bfloat16 matmuls in bfloat16 kernels or through float32 ones (the same
    # operands, summed in float32 either way; "auto": float32 kernels on the
    # CPUs where they are faster, from its flags): `bert_adapters/ops/dense.py`.
    bf16_matmuls: str = "auto"
    jit_compile: bool = False
    # Training steps run inside one compiled call (BERT's TPU
    # --iterations_per_loop); fewer Python round trips on every device.
    iterations_per_loop: int = 1
    save_checkpoints_steps: int = 500
    log_every_steps: int = 20

    # Settings that change what training computes: a resumed run must agree.
    # A subclass adds its own data fields.
    TRAINING_FIELDS: ClassVar[Tuple[str, ...]] = (
        "encoder", "init_checkpoint", "bert_config_file", "tuning", "num_tuned_layers",
        "adapter_size", "adapter_init_scale", "adapter_layers", "max_seq_length",
        "train_batch_size",
        "learning_rate", "num_train_epochs", "warmup_proportion", "optimizer", "weight_decay",
        "seed", "max_train_steps", "group_by_length", "mixed_precision", "fast_dropout")
    # Fields holding tuples (JSON gives lists).
    TUPLE_FIELDS: ClassVar[Tuple[str, ...]] = ()

    def __post_init__(self):
        if self.tuning == "adapters" and self.adapter_size is None:
            object.__setattr__(self, "adapter_size", 64)
        # The form is checked here (a sweep's trials before any runs); the
        # encoder checks the span against its layers.
        object.__setattr__(self, "adapter_layers",
                           format_layer_span(parse_layer_span(self.adapter_layers)))
        object.__setattr__(self, "cpu_replicas", parse_cpu_replicas(self.cpu_replicas))

    def task_kind(self, artifact_config=None):
        """The `tasks.TaskKind` that runs these settings (subclasses say which)."""
        raise NotImplementedError(f"{type(self).__name__} names no task kind")

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - fields)
        if unknown:
            raise ValueError(f"Unknown run settings {unknown}")
        obj = dict(obj)
        for key in cls.TUPLE_FIELDS:
            if obj.get(key) is not None:
                obj[key] = tuple(obj[key])
        return cls(**obj)


def parse_cpu_replicas(value):
    """`--cpu_replicas`: a positive number (int or its text) or "auto"."""
    if value == "auto":
        return value
    try:
        replicas = int(value)
    except (TypeError, ValueError):
        replicas = 0
    if replicas < 1 or str(value).strip() != str(replicas):
        raise ValueError(f"--cpu_replicas={value!r}: expected a positive number or auto")
    return replicas
