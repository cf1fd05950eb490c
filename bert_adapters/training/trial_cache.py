"""`TrialCache`: what the trials of a sweep, run in one process, share.

A sweep calls `trainer.run` once per trial. Alone, every call reads the base
checkpoint, tokenizes the data, builds the model and traces the training and
evaluation functions again, although trials of one sweep differ only in a
few hyperparameters. While a cache is active (`with cache.active():`, as
`sweep.runner` does around each trial), `trainer.run` takes from it:

  - the base checkpoint's canonical weights, read once per
    (source, init_checkpoint, bert_config_file);
  - the tokenized splits, once per (task kind, every setting that is not a
    pure training hyperparameter, vocabulary, casing);
  - the model, its optimiser and the traced training and evaluation
    functions, once per *shape* (`model_key`: tuning mode, adapter size,
    head, precision, batch sizes, optimiser and weight decay, strategy).
    A later trial of the same shape still builds its own fresh model (same
    seed, so the same initial values as without a cache), copies its values
    into the kept model, resets the optimiser's state to its just-built
    values and sets the learning-rate schedule's peak, length and warm-up
    (variables the traced step reads), so the traced functions are reused.

Every trial's outputs are the same as without the cache
(tests/training/trial_cache_test.py compares a cached sweep's eval results with
uncached runs). Shared arrays are made read-only, so that no trial can
change what the next one reads.
"""

import contextlib
import copy
import json
import threading

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bert_adapters.training.optimization import WarmupLinearDecay

# Settings that change only how a run trains, never its data or features: the
# splits of runs that differ only in these are shared.
TRAINING_ONLY_FIELDS = (
    "tuning", "num_tuned_layers", "adapter_size", "adapter_init_scale", "train_batch_size",
    "eval_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion", "optimizer",
    "weight_decay", "seed", "max_train_steps", "group_by_length", "mixed_precision",
    "jit_compile", "iterations_per_loop", "save_checkpoints_steps", "log_every_steps",
    "head_dropout", "pack_sequences", "fast_dropout", "bf16_matmuls", "distribution_strategy",
    "num_gpus", "cpu_replicas", "tpu", "tpu_zone", "gcp_project", "task_dir", "adapter_layers",
    "cls_only_top_layer")
# Settings that shape the model, its optimiser and their traced functions
# (what may differ between trials sharing them: learning rate, epochs,
# warm-up, seed, initial scale of the adapters, step caps, data order).
MODEL_FIELDS = (
    "encoder", "init_checkpoint", "bert_config_file", "tuning", "num_tuned_layers",
    "adapter_size", "max_seq_length", "train_batch_size",
    "eval_batch_size", "optimizer", "weight_decay", "mixed_precision", "jit_compile",
    "pack_sequences", "fast_dropout", "bf16_matmuls", "adapter_layers", "cls_only_top_layer")

_ACTIVE = threading.local()


@contextlib.contextmanager
def kernel_cache_kept(keep=True):
    """Within it, TensorFlow keeps its cache of instantiated functions.

    `tf.random.set_seed` (so `keras.utils.set_random_seed`) and
    `keras.backend.clear_session` empty that cache, so the next call of a
    traced step that trials share is instantiated and optimised by Grappler
    again: 2-3 s per trial on MiniLM-L6 (benchmarks/sweep_overhead.py). The
    cache only resets the state of stateful random kernels, which the shared
    steps do not use (dropout draws from per-layer seed variables); the
    trials' results stay bitwise those of separate runs
    (tests/training/trial_cache_test.py). `keep=False`: no change.
    """
    if not keep:
        yield
        return
    from tensorflow.python import pywrap_tfe  # pylint: disable=import-outside-toplevel

    clear = pywrap_tfe.TFE_ContextClearCaches
    pywrap_tfe.TFE_ContextClearCaches = lambda handle: None
    try:
        yield
    finally:
        pywrap_tfe.TFE_ContextClearCaches = clear


def current():
    """The cache active in this thread, or None."""
    return getattr(_ACTIVE, "cache", None)


def _frozen(value):
    """`value` with its numpy arrays made read-only (shared between trials)."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, dict):
        for item in value.values():
            _frozen(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _frozen(item)
    elif hasattr(value, "features") and hasattr(value, "labels"):  # a tasks.Split
        _frozen(value.features)
        _frozen(value.labels)
    return value


def _key(obj):
    return json.dumps(obj, sort_keys=True, default=repr)


class AssignableWarmupLinearDecay(WarmupLinearDecay):
    """`WarmupLinearDecay` whose three settings are float32 variables.

    Gives the same float32 values as `WarmupLinearDecay` with the same
    settings (the constants it folds in are these values), and a traced
    training step that reads it follows `assign` without re-tracing.
    """

    def __init__(self, peak_learning_rate, num_train_steps, num_warmup_steps):
        super().__init__(peak_learning_rate, num_train_steps, num_warmup_steps)
        # Plain attributes of a plain object: not tracked, so checkpoints of
        # the optimiser are the same with or without a cache.
        self._values = [tf.Variable(0.0, trainable=False, dtype=tf.float32) for _ in range(3)]
        self.assign(peak_learning_rate, num_train_steps, num_warmup_steps)

    def assign(self, peak_learning_rate, num_train_steps, num_warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        for variable, value in zip(self._values, (
                peak_learning_rate, max(num_train_steps, 1), num_warmup_steps)):
            variable.assign(float(value))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, total, warmup = self._values
        decayed = peak * ops.maximum(0.0, 1.0 - step / total)
        # With no warm-up `step < warmup` never holds: the decayed rate, as
        # WarmupLinearDecay's branch gives.
        return ops.where(step < warmup, peak * step / warmup, decayed)


class SharedModel:
    """A model kept for the trials of one shape, with what was traced for it.

    Attributes:
        model, encoder: the kept task model and its encoder.
        optimizer, global_step, train_loop: set by the first trial that
            trains it (`keep_training`), reused by the next ones.
    """

    def __init__(self, model, encoder):
        self.model = model
        self.encoder = encoder
        self.optimizer = None
        self.global_step = None
        self.train_loop = None
        self._optimizer_start = None

    def load_values(self, fresh_model, fresh_encoder):
        """Copies a freshly built model's values (weights, dropout seeds, gates) into this one."""
        kept, fresh = self.model.variables, fresh_model.variables
        if [v.path for v in kept] != [v.path for v in fresh] or any(
                tuple(a.shape) != tuple(b.shape) for a, b in zip(kept, fresh)):
            raise ValueError("trial_cache: a model of the same key has other variables")
        for target, source in zip(kept, fresh):
            target.assign(source)
        for target, source in zip(self.encoder.transformer_layers,
                                  fresh_encoder.transformer_layers):
            if target.adapter_gate is not None:
                target.adapter_gate.assign(source.adapter_gate)

    def keep_training(self, optimizer, global_step):
        """Keeps a just-built optimiser (schedule made assignable) and step counter."""
        schedule = getattr(optimizer, "_learning_rate", None)
        if not isinstance(schedule, WarmupLinearDecay):
            return False
        optimizer.learning_rate = AssignableWarmupLinearDecay(
            schedule.peak_learning_rate, schedule.num_train_steps, schedule.num_warmup_steps)
        self.optimizer, self.global_step = optimizer, global_step
        self._optimizer_start = [v.numpy() for v in optimizer.variables]
        return True

    def reset_training(self, learning_rate, num_train_steps, num_warmup_steps):
        """The kept optimiser back at its just-built state with this trial's schedule."""
        for variable, value in zip(self.optimizer.variables, self._optimizer_start):
            variable.assign(value)
        self.optimizer._learning_rate.assign(  # noqa: SLF001
            learning_rate, num_train_steps, num_warmup_steps)
        self.global_step.assign(0)
        return self.optimizer, self.global_step


# === What trainer.run calls ===
class RunHooks:
    """The points where `trainer.run` may reuse what an earlier trial of its sweep made.

    Outside a sweep (`hooks()` with no active cache) each hook does the plain
    thing: seed, read, tokenize, build. A `TrialCache` subclasses it.
    """

    def set_seed(self, seed):
        """Seeds Python, NumPy, TensorFlow and Keras for the run."""
        keras.utils.set_random_seed(seed)

    def base_checkpoint(self, config):
        """`checkpoints.read_checkpoint`'s result for the run's base, or None: read it yourself."""
        del config
        return None

    def splits(self, kind, config, vocabulary, load):
        """The run's tokenized splits: `load()`."""
        del kind, config, vocabulary
        return load()

    def shared_model(self, config, kind, strategy, model, encoder):
        """(model, encoder) to train: here the fresh ones."""
        del config, kind, strategy
        return model, encoder

    def optimizer(self, model, config, schedule_steps, build):
        """(optimizer, global_step) for `model`: `build()`'s."""
        del model, config, schedule_steps
        return build()

    def train_loop(self, model, optimizer, build):
        """The traced training loop for `model` and `optimizer`: `build()`'s."""
        del model, optimizer
        return build()


_NO_CACHE = RunHooks()


def hooks():
    """The active sweep's cache, or hooks that reuse nothing."""
    return current() or _NO_CACHE


class TrialCache(RunHooks):
    """Base weights, tokenized splits and models shared by the trials of a sweep.

    Args:
        max_models: how many model shapes are kept at once (least recently
            used dropped first); each holds a model, its optimiser state and
            traced functions.
    """

    def __init__(self, max_models=2):
        self.max_models = max_models
        self._checkpoints = {}
        self._splits = {}
        self._models = {}
        self.stats = {"checkpoint_reads": 0, "split_loads": 0, "model_builds": 0,
                      "model_reuses": 0}

    @contextlib.contextmanager
    def active(self):
        """Makes this the cache `trainer.run` consults in this thread."""
        previous = current()
        _ACTIVE.cache = self
        try:
            yield self
        finally:
            _ACTIVE.cache = previous

    def set_seed(self, seed):
        """Seeds as `RunHooks` does, keeping the kernels the trials share (`kernel_cache_kept`)."""
        with kernel_cache_kept():
            super().set_seed(seed)

    # === Base checkpoint ===
    def checkpoint(self, source, init_checkpoint, bert_config_file, read):
        """`read()`'s (BertConfig, canonical weights, description), once per source."""
        key = (source, init_checkpoint, bert_config_file)
        if key not in self._checkpoints:
            self._checkpoints[key] = _frozen(read())
            self.stats["checkpoint_reads"] += 1
        return self._checkpoints[key]

    def base_checkpoint(self, config):
        from bert_adapters import checkpoints  # pylint: disable=import-outside-toplevel

        return self.checkpoint(
            config.encoder, config.init_checkpoint, config.bert_config_file,
            lambda: checkpoints.read_checkpoint(config.encoder,
                                                init_checkpoint=config.init_checkpoint,
                                                bert_config_file=config.bert_config_file))

    # === Tokenized data ===
    def splits(self, kind, config, vocabulary, load):
        """`load()`'s splits for this kind and data settings, loaded once.

        What `load()` sets on the kind (records it keeps, e.g. skipped
        questions) is set again, as a shallow copy, on the next kinds.
        """
        settings = {k: v for k, v in config.to_json().items() if k not in TRAINING_ONLY_FIELDS}
        key = _key([type(kind).__module__, type(kind).__qualname__, settings, vocabulary,
                    kind.loaded_artifact])
        if key not in self._splits:
            before = dict(vars(kind))
            splits = _frozen(load())
            state = {k: v for k, v in vars(kind).items()
                     if k not in before or before[k] is not v}
            self._splits[key] = (splits, state)
            self.stats["split_loads"] += 1
            return splits
        splits, state = self._splits[key]
        for name, value in state.items():
            setattr(kind, name, copy.copy(value))
        return dict(splits)

    # === Models and traced functions ===
    @staticmethod
    def model_key(config, kind, strategy):
        """What must agree for two trials to share a model and its traced functions."""
        if config.mixed_precision == "fp16":
            return None  # The loss-scale optimiser's state is not reset here.
        return _key([{f: getattr(config, f, None) for f in MODEL_FIELDS},
                     kind.artifact_config(), id(strategy)])

    def shared_for(self, model):
        """The kept `SharedModel` whose model is `model`, or None."""
        return next((s for s in self._models.values() if s.model is model), None)

    def shared_model(self, config, kind, strategy, model, encoder):
        """The kept model and encoder of this shape, holding the fresh ones' values."""
        shared = self._keep(self.model_key(config, kind, strategy), model, encoder)
        return (shared.model, shared.encoder) if shared else (model, encoder)

    def optimizer(self, model, config, schedule_steps, build):
        """The kept optimiser, reset for this trial's schedule; or `build()`'s, kept."""
        shared = self.shared_for(model)
        if shared is not None and shared.optimizer is not None:
            return shared.reset_training(config.learning_rate, schedule_steps,
                                         int(schedule_steps * config.warmup_proportion))
        optimizer, global_step = build()
        if shared is not None:
            shared.keep_training(optimizer, global_step)
        return optimizer, global_step

    def train_loop(self, model, optimizer, build):
        """The kept model's traced loop; or `build()`'s, kept with the optimiser it traced."""
        shared = self.shared_for(model)
        if shared is not None and shared.train_loop is not None:
            return shared.train_loop
        loop = build()
        if shared is not None and shared.optimizer is optimizer:
            shared.train_loop = loop
        return loop

    def _keep(self, key, model, encoder):
        """The `SharedModel` for `key`, holding `model`'s values; None without a key."""
        if key is None:
            return None
        shared = self._models.pop(key, None)
        if shared is None:
            shared = SharedModel(model, encoder)
            self.stats["model_builds"] += 1
        else:
            shared.load_values(model, encoder)
            self.stats["model_reuses"] += 1
        self._models[key] = shared  # Most recently used last.
        while len(self._models) > self.max_models:
            del self._models[next(iter(self._models))]
        return shared
