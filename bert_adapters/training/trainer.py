"""`run(config, output_dir)`: one job of any task kind, top to bottom.

Strategy, data, model, checkpoint, train, evaluate, predict, write. What
differs between task kinds (data and features, head, loss, metrics, output
files, what the artifact records) comes from `config.task_kind()`, a
`tasks.TaskKind`; this file knows no task by name. Every file in
`output_dir` is written atomically through `tf.io.gfile` (so `gs://`
works); `eval_results.json` and the task artifact's `task_config.json` are
written only once their contents are complete. A job restarted on the same
`output_dir` resumes from its last checkpoint and ends with the same weights
as an uninterrupted one.

With `multi_worker_mirrored` every worker runs this same call on its share of
each global batch; only the chief writes to `output_dir`. Other workers save
their checkpoints and prediction files (TF's multi-worker rule) to a private
temporary directory that is removed when the call returns, and restore from
the chief's checkpoints. Workers compare what they loaded before the first
collective, so one worker's bad input stops the whole job with its message.
"""

import contextlib
import dataclasses
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import checkpoints, io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.ops import settings
from bert_adapters.model import trainable
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.model.layer_span import format_layer_span
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.training import distribution, input_pipeline, packing, train_stats, trial_cache
from bert_adapters.training.optimization import create_optimizer

RUN_CONFIG_FILE = "run_config.json"
PARAMS_FILE = "params.json"
EVAL_RESULTS_FILE = "eval_results.json"
ARTIFACT_DIR = "task_artifact"
CHECKPOINT_DIR = "checkpoints"
PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class RunError(ValueError):
    """A problem with the run's settings or inputs, explained for the user."""


class WorkerLostError(RunError):
    """Another worker of a multi-worker job stopped: restart them all to resume."""


# What a collective raises when a peer is gone (TF's coordination service
# stops every worker within seconds of a missed heartbeat).
_LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError,
                       tf.errors.DeadlineExceededError, tf.errors.CancelledError)


def run(config, output_dir, step_callback=None, strategy=None):
    """Trains, evaluates and/or predicts as `config` says; returns eval results.

    Args:
        config: a `RunConfig` subclass naming its task kind
            (`tasks.classification.ClassifierConfig`, `tasks.squad.SquadConfig`).
        output_dir: where every output goes (local or `gs://`).
        step_callback: optional `fn(global_step)` called after every training
            step (tests use it to interrupt a run).
        strategy: a `tf.distribute.Strategy` to use instead of
            `config.distribution_strategy` (tests, notebooks).
    """
    _check_config(config)
    # The first TensorFlow call: multi-worker and TPU strategies must be made
    # before anything touches TensorFlow's context (see distribution.py).
    strategy = strategy or distribution.strategy_from_config(config)
    try:
        with _precision_policy(config.mixed_precision), \
                settings.use(_op_settings(config, strategy)), \
                _write_dir(strategy, output_dir) as write_dir:
            return _run(config, output_dir, write_dir, step_callback, strategy)
    except _LOST_WORKER_ERRORS as err:
        if not distribution.is_multi_worker(strategy):
            raise
        latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
        raise WorkerLostError(
            f"worker {distribution.worker_index(strategy)} lost the other workers "
            f"({_first_lines(err.message)}); restart every worker with the same command: "
            f"training resumes from {latest or 'the start (no checkpoint yet)'}") from None


def _run(config, output_dir, write_dir, step_callback, strategy):
    # === Strategy ===
    static_shapes = distribution.needs_static_shapes(strategy)
    chief = distribution.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    for field, used in (("train_batch_size", config.do_train),
                        ("eval_batch_size", config.do_eval or config.do_predict)):
        if used and getattr(config, field) % replicas:
            raise RunError(f"--{field}={getattr(config, field)} does not split evenly over the "
                           f"{replicas} replicas (workers x devices) that each take an equal "
                           f"share of every batch")
    with trial_cache.kernel_cache_kept(trial_cache.current() is not None):
        keras.utils.set_random_seed(config.seed)

    # === Data ===
    # What each worker reads on its own (settings, vocabulary, data files) is
    # read before the first collective; then the workers compare notes.
    try:
        if chief:
            io_utils.makedirs(output_dir)
        config, artifact_config, kind, splits = _load(config)
        error = None
    except Exception as err:  # pylint: disable=broad-except
        error = err  # Told to the other workers, then raised.
    multi_worker = distribution.is_multi_worker(strategy)
    digest = _inputs_digest(config, splits) if multi_worker and error is None else ""
    notes = distribution.agree(strategy, error, digest)
    if len(set(notes)) > 1:
        raise RunError(f"the workers loaded different settings or data ({_by_worker(notes)}): "
                       f"run the same command on the same files on every worker")

    # === Model ===
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            config.encoder, adapter_size=config.adapter_size,
            adapter_init_scale=config.adapter_init_scale, adapter_layers=config.adapter_layers,
            init_checkpoint=config.init_checkpoint,
            bert_config_file=config.bert_config_file, vocab_file=config.vocab_file,
            checkpoint=trial_cache.base_checkpoint(config))
        if config.max_seq_length > encoder.config.max_sequence_length:
            raise RunError(
                f"--max_seq_length={config.max_seq_length} exceeds the encoder's "
                f"{encoder.config.max_sequence_length} position embeddings")
        trainable.apply_tuning(encoder, config.tuning, config.num_tuned_layers)
        model = kind.build_model(encoder)
        if config.task_dir:
            artifact.load_artifact_weights(model, encoder, config.task_dir)
        # In a sweep: an earlier trial's model of the same shape, holding
        # this one's values, so its traced functions serve again.
        model, encoder = trial_cache.shared_model(config, kind, strategy, model, encoder)
    fingerprint = base_fingerprint(encoder)
    try:
        _write_run_config(output_dir, config, encoder, fingerprint, kind, write=chief)
        error = None
    except Exception as err:  # pylint: disable=broad-except
        error = err
    notes = distribution.agree(strategy, error, fingerprint)
    if len(set(notes)) > 1:
        raise RunError(f"the workers loaded different base encoders ({_by_worker(notes)}): "
                       f"every worker must read the same --encoder/--init_checkpoint")
    report = trainable.parameter_report(model, encoder)
    if chief:
        io_utils.write_json(io_utils.join(output_dir, PARAMS_FILE), report)
    logging.info("Parameters: %s", report)

    # === Train ===
    if config.do_train:
        steps = _train(config, output_dir, write_dir, strategy, model, encoder, kind,
                       splits[kind.train_split], static_shapes, step_callback)
        if chief:
            artifact.save_artifact(io_utils.join(output_dir, ARTIFACT_DIR), model, encoder, {
                **kind.artifact_config(),
                "tuning": config.tuning, "num_tuned_layers": config.num_tuned_layers,
                "adapter_size": config.adapter_size,
                "adapter_init_scale": config.adapter_init_scale,
                "adapter_layers": format_layer_span(encoder.adapter_layers),
                "encoder_source": config.encoder, "init_checkpoint": config.init_checkpoint,
                "bert_config_file": config.bert_config_file, "vocab_file": config.vocab_file,
                "max_seq_length": config.max_seq_length, "global_step": steps}, fingerprint)

    # === Evaluate and predict ===
    # Every worker computes every output (its replicas' share, gathered);
    # only the chief's files are kept.
    step = steps if config.do_train else _trained_steps(output_dir, artifact_config)
    eval_model = (packing.packed_train_model(kind, model, encoder, static_shapes)
                  if config.pack_sequences else model)   # Packed evaluation rows too.
    outputs = _OutputCache(strategy, eval_model, splits, config.eval_batch_size, static_shapes)
    results = {}
    if config.do_eval:
        for i, key in enumerate(kind.eval_splits):
            values = kind.evaluate(splits[key], outputs[key])
            # The primary split's metrics are unprefixed; others carry the split.
            prefix = "" if i == 0 else f"{key}_"
            results.update({prefix + k: v for k, v in values.items()})
        results["num_eval_examples"] = kind.num_examples(splits[kind.eval_splits[0]])
    if config.do_predict:
        for key in kind.predict_splits(splits):
            values = kind.write_predictions(write_dir, splits[key], outputs[key])
            if values and not config.do_eval:
                # Predicted data that has answers is scored as it is predicted.
                results.update(values)
                results["num_eval_examples"] = kind.num_examples(splits[key])
    if results:
        results["global_step"] = step
        if chief:
            _write_eval_results(output_dir, results, step)
    return results


def _load(config):
    """Settings merged with --task_dir's artifact, the task kind and its data splits."""
    artifact_config = artifact.read_task_config(config.task_dir) if config.task_dir else None
    config = _merge_artifact_settings(config, artifact_config)
    kind = config.task_kind(artifact_config)
    if artifact_config is not None:
        kind.check_artifact(artifact_config)
    vocab_file, lower_case = checkpoints.locate_vocab(
        config.encoder, vocab_file=config.vocab_file, init_checkpoint=config.init_checkpoint)
    if config.do_lower_case is not None and config.do_lower_case != lower_case:
        raise RunError(
            f"--do_lower_case={config.do_lower_case} contradicts the vocabulary {vocab_file}, "
            f"which is {'uncased' if lower_case else 'cased'}: use "
            f"--do_lower_case={lower_case} (or leave it out)")

    def load_splits():
        return kind.load_splits(BertTokenizer(vocab_file, lower_case=lower_case,
                                              max_seq_length=config.max_seq_length))

    cache = trial_cache.current()  # In a sweep: tokenized once for every trial.
    splits = (cache.splits(kind, config, [vocab_file, lower_case], load_splits) if cache
              else load_splits())
    return config, artifact_config, kind, splits


# === Workers ===
# Settings that shape every worker's sequence of collectives and updates
# (paths may differ between machines; the data they name is compared itself).
_AGREED_FIELDS = (
    "tuning", "num_tuned_layers", "adapter_size", "max_seq_length", "train_batch_size",
    "eval_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion", "optimizer",
    "weight_decay", "seed", "max_train_steps", "group_by_length", "do_train", "do_eval",
    "do_predict", "mixed_precision", "jit_compile", "iterations_per_loop",
    "save_checkpoints_steps", "fast_dropout", "adapter_layers")


def _inputs_digest(config, splits):
    """One digest of the settings and tokenized data every worker must share."""
    items = [{f: getattr(config, f) for f in _AGREED_FIELDS}]
    for key in sorted(splits):
        split = splits[key]
        items += [key] + [split.features[n] for n in sorted(split.features)]
        if split.labels is not None:
            items.append(np.asarray(split.labels))
    return distribution.digest_arrays(*items)


def _first_lines(text, count=2):
    return " ".join([line.strip() for line in str(text).splitlines() if line.strip()][:count])


def _by_worker(notes):
    return ", ".join(f"worker {i}: {note[:16]}" for i, note in enumerate(notes))


@contextlib.contextmanager
def _write_dir(strategy, output_dir):
    """`output_dir` on the chief; a private temporary directory on other workers.

    TF's multi-worker rule: every worker saves (checkpoints may need all of
    them), but only the chief's files are kept.
    """
    if distribution.is_chief(strategy):
        yield output_dir
        return
    scratch = tempfile.mkdtemp(prefix=f"bert_adapters_worker{distribution.worker_index(strategy)}_")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# === Settings ===
def _check_config(config):
    if not (config.do_train or config.do_eval or config.do_predict):
        raise RunError("At least one of --do_train, --do_eval or --do_predict must be set")
    if not (config.encoder or config.init_checkpoint or config.task_dir):
        raise RunError("Give the base encoder: --encoder (e.g. minilm_l6, a TF Hub handle or a "
                       "checkpoint directory) or --init_checkpoint with --bert_config_file")
    if (config.do_eval or config.do_predict) and not config.do_train and not config.task_dir:
        raise RunError("--do_eval/--do_predict without --do_train needs --task_dir, the output "
                       "directory (or its task_artifact) of an earlier training run")
    if config.mixed_precision not in PRECISION_POLICIES:
        raise RunError(f"--mixed_precision={config.mixed_precision!r}: expected bf16 or fp16")
    if config.bf16_matmuls not in settings.BF16_MATMULS:
        raise RunError(f"--bf16_matmuls={config.bf16_matmuls!r}: expected one of "
                       f"{', '.join(settings.BF16_MATMULS)}")
    for field in ("max_seq_length", "train_batch_size", "eval_batch_size",
                  "iterations_per_loop", "save_checkpoints_steps"):
        if getattr(config, field) < 1:
            raise RunError(f"--{field} must be positive, got {getattr(config, field)}")
    if config.learning_rate <= 0 or config.num_train_epochs <= 0:
        raise RunError("--learning_rate and --num_train_epochs must be positive")
    if not config.task_dir:
        trainable.check_tuning(config.tuning, config.adapter_size, 10**6, config.num_tuned_layers,
                               config.adapter_layers)


def _merge_artifact_settings(config, artifact_config):
    """With --task_dir, the model's shape (and, unless given, its base) come from the artifact."""
    if artifact_config is None:
        return config
    missing = [k for k in _ARTIFACT_KEYS if k not in artifact_config]
    if missing:
        path = io_utils.join(artifact.resolve_artifact_dir(config.task_dir), artifact.CONFIG_FILE)
        raise RunError(f"{path} lacks {missing}: not a complete task artifact (written by a "
                       f"training run's end)")
    if not (config.encoder or config.init_checkpoint):
        config = dataclasses.replace(
            config, encoder=artifact_config["encoder_source"],
            init_checkpoint=artifact_config.get("init_checkpoint"),
            bert_config_file=artifact_config.get("bert_config_file"),
            vocab_file=config.vocab_file or artifact_config.get("vocab_file"))
    return dataclasses.replace(
        config, tuning=artifact_config["tuning"],
        num_tuned_layers=artifact_config["num_tuned_layers"],
        adapter_size=artifact_config["adapter_size"],
        adapter_init_scale=artifact_config["adapter_init_scale"],
        # Artifacts written before adapter spans existed have adapters in every layer.
        adapter_layers=artifact_config.get("adapter_layers"))


# What _merge_artifact_settings and the fingerprint check read from task_config.json.
_ARTIFACT_KEYS = ("tuning", "num_tuned_layers", "adapter_size", "adapter_init_scale",
                  "encoder_source", "base_fingerprint")


def _write_run_config(output_dir, config, encoder, fingerprint, kind, write=True):
    """Writes run_config.json (if `write`); a resumed run must not change training settings.

    A run that does not train keeps the record of a training run already in
    `output_dir` (BERT's README predicts into the training folder): sweeps and
    glue_submission read what was trained from it.
    """
    path = io_utils.join(output_dir, RUN_CONFIG_FILE)
    if write and not config.do_train and io_utils.exists(path):
        old = io_utils.read_json(path)
        if old.get("settings", {}).get("do_train"):
            logging.info("Keeping %s: it records the training run of this directory", path)
            write = False
    record = {"settings": config.to_json(), "encoder_source": getattr(encoder, "source", None),
              "base_fingerprint": fingerprint, "task_kind": kind.name, **kind.record(),
              "encoder_config": encoder.config.architecture()}
    if config.mixed_precision == "bf16":
        # What --bf16_matmuls=auto chose on this machine.
        record["bf16_matmul_kernels"] = ("float32" if settings.float32_matmuls(tf.bfloat16)
                                         else "bfloat16")
    record["op_settings"] = settings.describe()  # What the ops chose for these devices.
    if io_utils.exists(path) and config.do_train:
        old = io_utils.read_json(path)
        changed = [f"{f}: {old['settings'].get(f)!r} -> {record['settings'].get(f)!r}"
                   for f in type(config).TRAINING_FIELDS
                   if _jsonable(old["settings"].get(f)) != _jsonable(record["settings"].get(f))]
        if old.get("base_fingerprint") != fingerprint:
            changed.append("base encoder weights (fingerprint)")
        if changed:
            raise RunError(f"{path} records a run with other settings ({'; '.join(changed)}); "
                           f"use a new --output_dir or delete the old one")
    if write:
        io_utils.write_json(path, record)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


@contextlib.contextmanager
def _precision_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[name])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _op_settings(config, strategy):
    """The ops' settings for this run: its flags and its strategy's devices."""
    return settings.Settings(fast_dropout=config.fast_dropout, bf16_matmuls=config.bf16_matmuls,
                             devices=settings.devices_of(strategy.extended.worker_devices))


# === Training ===
def _train(config, output_dir, write_dir, strategy, model, encoder, kind, train, static_shapes,
           step_callback):
    """Trains (or resumes) to the configured step count; returns it.

    Steps run `iterations_per_loop` at a time inside one compiled call; a
    loop also ends at every checkpoint step, so checkpoints land exactly on
    multiples of `save_checkpoints_steps` and a resumed run repeats the
    uninterrupted one. Losses come back per step: logs and `step_callback`
    still see every step.
    """
    num_examples = train.num_rows
    total_steps = input_pipeline.num_train_steps(
        num_examples, config.train_batch_size, config.num_train_epochs, config.max_train_steps)
    if total_steps < 1:
        raise RunError(f"{num_examples} training examples give no full batch of "
                       f"{config.train_batch_size}")
    # The learning-rate schedule spans the uncapped run, as BERT, unless capped.
    schedule_steps = total_steps
    shared = trial_cache.shared_training(model)  # In a sweep: kept with its optimiser.
    with strategy.scope():
        if shared is not None and shared.optimizer is not None:
            optimizer, global_step = shared.reset_training(
                config.learning_rate, schedule_steps,
                int(schedule_steps * config.warmup_proportion))
        else:
            optimizer = create_optimizer(
                config.optimizer, config.learning_rate, schedule_steps, config.warmup_proportion,
                config.weight_decay, gradients_reduced_by_caller=True)
            if config.mixed_precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            trainable = model.trainable_variables
            optimizer.build(trainable)
            global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            if shared is not None:
                shared.keep_training(optimizer, global_step)
    seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
    checkpoint = tf.train.Checkpoint(
        step=global_step, optimizer=optimizer, rng=seed_states,
        trained={name.replace("/", "."): v
                 for name, v in artifact.trained_weight_map(model, encoder).items()})
    # Every worker restores the chief's latest checkpoint; each saves to its
    # own write_dir (the chief's is output_dir; the others' are deleted).
    manager = tf.train.CheckpointManager(
        checkpoint, io_utils.join(write_dir, CHECKPOINT_DIR), max_to_keep=2)
    latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", latest, int(global_step.numpy()))
    start = int(global_step.numpy())
    notes = distribution.agree(strategy, note=str(start))
    if len(set(notes)) > 1:
        raise RunError(
            f"the workers resume from different steps ({_by_worker(notes)}): every worker must "
            f"read the chief's checkpoints in {output_dir} (a shared file system or gs://)")
    if start >= total_steps:
        logging.info("Training already finished (%d steps)", start)
        return total_steps

    lengths = input_pipeline.sequence_lengths(train.features)
    rows = input_pipeline.train_index_matrix(
        num_examples, config.train_batch_size, total_steps, config.seed,
        lengths=lengths if config.group_by_length else None)
    train_model = model
    if config.pack_sequences:  # Same examples per step, several per row.
        train_model = packing.packed_train_model(kind, model, encoder, static_shapes)
        dataset = packing.make_packed_dataset(strategy, train.features, train.labels,
                                              rows[start:])
    else:
        dataset = input_pipeline.make_dataset(
            strategy, train.features, train.labels, rows[start:], static_shapes)
    iterator = iter(dataset)
    fp16 = config.mixed_precision == "fp16"
    inner = optimizer.inner_optimizer if fp16 else optimizer
    train_loop = shared.train_loop if shared is not None else None
    if train_loop is None:
        train_loop = make_train_loop(
            strategy, train_model, optimizer, kind.loss, config.train_batch_size, global_step,
            config.jit_compile, learning_rate=lambda: inner.learning_rate)
        if shared is not None and shared.optimizer is optimizer:
            shared.train_loop = train_loop

    chief = distribution.is_chief(strategy)
    writer = (tf.summary.create_file_writer(io_utils.join(output_dir, "logs", "train"))
              if chief else tf.summary.create_noop_writer())
    progress = keras.utils.Progbar(total_steps, stateful_metrics=["loss", "lr"],
                                   interval=5.0, verbose=1 if chief else 0)
    started, window_loss, window = time.time(), 0.0, 0
    meter = train_stats.TrainMeter(config.train_batch_size, start)
    step = start
    while step < total_steps:
        end = loop_end(step, total_steps, config.iterations_per_loop,
                       config.save_checkpoints_steps)
        loop_started = time.perf_counter()
        losses, rates = train_loop(iterator, tf.constant(end - step, tf.int32))
        losses, rates = losses.numpy(), rates.numpy()
        meter.loop_done(end - step, time.perf_counter() - loop_started)
        first = step + 1
        for step, loss, lr in zip(range(first, end + 1), losses, rates):
            window_loss, window = window_loss + float(loss), window + 1
            if step % config.log_every_steps == 0 or step == total_steps:
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", window_loss / window)
                    tf.summary.scalar("learning_rate", float(lr))
                progress.update(step, [("loss", window_loss / window), ("lr", float(lr))])
                window_loss, window = 0.0, 0
            if step == end and (step % config.save_checkpoints_steps == 0
                                or step == total_steps):
                manager.save(checkpoint_number=step)
                if not chief:
                    tf.io.gfile.rmtree(io_utils.join(write_dir, CHECKPOINT_DIR))
            if step_callback is not None:
                step_callback(step)
    writer.flush()
    if chief:
        train_stats.write(output_dir, meter.record())
    elapsed = time.time() - started
    logging.info("Trained %d steps in %.1f s (%.1f examples/s)", total_steps - start, elapsed,
                 (total_steps - start) * config.train_batch_size / max(elapsed, 1e-9))
    _check_workers_agree(strategy, model, encoder)
    return total_steps


def loop_end(step, total_steps, iterations_per_loop, save_checkpoints_steps):
    """Where a training loop that starts after `step` ends.

    At the next multiple of `iterations_per_loop`, or earlier at the next
    checkpoint step or the last step: loop boundaries are the same whether a
    run started at 0 or resumed from a checkpoint.
    """
    def next_multiple(n):
        return (step // n + 1) * n

    return min(next_multiple(iterations_per_loop), next_multiple(save_checkpoints_steps),
               total_steps)


def _check_workers_agree(strategy, model, encoder):
    """Logs the trained weights' digest; ValueError if the workers' differ."""
    if not distribution.is_multi_worker(strategy):
        return
    weights = artifact.trained_weight_map(model, encoder)
    digest = weights_digest({name: v.numpy() for name, v in weights.items()})
    notes = distribution.agree(strategy, note=digest)
    logging.info("Trained weights: sha256:%s (worker %d of %d)", digest,
                 distribution.worker_index(strategy), len(notes))
    if len(set(notes)) > 1:
        raise RunError(f"the workers ended training with different weights "
                       f"({_by_worker(notes)}): data-parallel training went out of sync")


def weights_digest(weights):
    """sha256 hex of {name: array} as float32, in name order (what workers compare)."""
    items = []
    for name in sorted(weights):
        items += [name, np.asarray(weights[name], np.float32)]
    return distribution.digest_arrays(*items)


def make_train_step(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                    jit_compile=False):
    """A tf.function `train_step(iterator) -> mean loss` over the strategy's replicas.

    Each replica's loss is summed over its examples and divided by the global
    batch size, gradients are summed across replicas before the optimiser
    clips their global norm (see optimization._ReducedGradientsMixin), and
    `global_step` is incremented. `jit_compile` XLA-compiles the forward and
    backward pass (not the cross-replica update).
    """
    return tf.function(_step_fn(strategy, model, optimizer, loss_fn, global_batch_size,
                                global_step, jit_compile))


def make_train_loop(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                    jit_compile=False, learning_rate=None):
    """A tf.function `train_loop(iterator, num_steps) -> (losses, learning_rates)`.

    Runs `num_steps` steps of `make_train_step` inside one call (a
    `tf.while_loop`: BERT's `--iterations_per_loop`), so Python and the
    function call are paid once per loop, not once per step. Returns the
    mean loss and learning rate after each step, float32 `[num_steps]`.
    `num_steps` is a tensor: one trace serves every loop length.
    """
    step_fn = _step_fn(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                       jit_compile)
    if learning_rate is None:
        learning_rate = lambda: optimizer.learning_rate  # noqa: E731

    @tf.function
    def train_loop(iterator, num_steps):
        def body(i, losses, rates):
            losses = losses.write(i, tf.cast(step_fn(iterator), tf.float32))
            rates = rates.write(i, tf.cast(learning_rate(), tf.float32))
            return i + 1, losses, rates

        # An explicit while loop, not a `for` over tf.range: it does not depend
        # on AutoGraph reading this file's source (which fails where the source
        # is missing or was edited since it was imported).
        _, losses, rates = tf.while_loop(
            lambda i, losses, rates: i < num_steps, body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=num_steps),
             tf.TensorArray(tf.float32, size=num_steps)))
        return losses.stack(), rates.stack()

    return train_loop


def _step_fn(strategy, model, optimizer, loss_fn, global_batch_size, global_step, jit_compile):
    """One training step over the strategy's replicas (see `make_train_step`)."""
    trainable = model.trainable_variables
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def compute_grads(inputs, labels):
        with tf.GradientTape() as tape:
            out = tf.cast(model(inputs, training=True), tf.float32)
            loss = tf.reduce_sum(loss_fn(labels, out)) / global_batch_size
            scaled = optimizer.scale_loss(loss) if scale_loss else loss
        grads = tape.gradient(scaled, trainable)
        # Embedding gradients arrive as IndexedSlices: densify for clipping.
        return loss, [tf.convert_to_tensor(g) for g in grads]

    if jit_compile:
        compute_grads = tf.function(compute_grads, jit_compile=True)

    def replica_step(inputs, labels, valid):
        del valid  # Training batches are always full.
        loss, grads = compute_grads(inputs, labels)
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            # Sum over replicas before the optimiser clips the global norm.
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        optimizer.apply_gradients(zip(grads, trainable))
        return loss

    def train_step(iterator):
        loss = strategy.run(replica_step, args=next(iterator))
        global_step.assign_add(1)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    return train_step


# === Evaluation and prediction ===
class _OutputCache:
    """Model outputs per split, computed once even when evaluated and predicted."""

    def __init__(self, strategy, model, splits, batch_size, static_shapes):
        self._args = (strategy, model, batch_size, static_shapes)
        self._splits = splits
        self._outputs = {}

    def __getitem__(self, key):
        if key not in self._outputs:
            self._outputs[key] = _predict(self._args[0], self._args[1],
                                          self._splits[key].features, *self._args[2:])
        return self._outputs[key]


def _predict(strategy, model, features, batch_size, static_shapes):
    """Float32 model outputs `[num_rows, ...]`, in row order.

    Outputs with a sequence axis (span logits `[batch, seq, 2]`) are per
    token: they come back at the features' full width, and every position
    off a row's tokens (its batch's padding, the columns past its batch's
    width, the positions past a packed window) is `heads.MASKED_LOGIT`, so
    a row's outputs depend neither on its batch's width nor on packing.
    (BERT's SQuAD search also ranks its padding positions' logits, which are
    never answers but can push real positions out of the n-best lists; a
    packed model never trained them.)
    """
    num_rows, width = features["input_mask"].shape
    # Batches of similar lengths pad little; TPUs pad everything to one shape anyway.
    lengths = None if static_shapes else input_pipeline.sequence_lengths(features)
    rows = input_pipeline.eval_index_matrix(num_rows, batch_size, lengths)
    if packing.is_packed(model):
        dataset = packing.make_packed_dataset(strategy, features, None, rows)
    else:
        dataset = input_pipeline.make_dataset(strategy, features, None, rows, static_shapes)
    iterator = iter(dataset)
    predict_step = _predict_step(strategy, model)
    outputs = []
    for _ in range(len(rows)):
        out = predict_step(iterator).numpy()
        if out.ndim >= 3 and out.shape[1] < width:
            pad = [(0, 0), (0, width - out.shape[1])] + [(0, 0)] * (out.ndim - 2)
            out = np.pad(out, pad, constant_values=MASKED_LOGIT)
        outputs.append(out)
    outputs = input_pipeline.scatter_outputs(rows, np.concatenate(outputs))
    if outputs.ndim >= 3:
        tokens = features["input_mask"].reshape((num_rows, width) + (1,) * (outputs.ndim - 2))
        outputs = np.where(tokens > 0, outputs, np.float32(MASKED_LOGIT))
    return outputs


def _predict_step(strategy, model):
    """One tf.function per (strategy, model): no re-tracing across splits."""
    key = (id(strategy), id(model))
    if key not in _PREDICT_STEPS:
        @tf.function
        def predict_step(iterator):
            inputs, _, _ = next(iterator)
            out = strategy.run(lambda x: tf.cast(model(x, training=False), tf.float32),
                               args=(inputs,))
            return strategy.gather(out, axis=0)

        _PREDICT_STEPS.clear()  # Keep only the current run's model alive.
        _PREDICT_STEPS[key] = predict_step
    return _PREDICT_STEPS[key]


_PREDICT_STEPS = {}


def _write_eval_results(output_dir, results, step):
    """eval_results.json, BERT's eval_results.txt and TensorBoard scalars."""
    writer = tf.summary.create_file_writer(io_utils.join(output_dir, "logs", "eval"))
    with writer.as_default(step=step):
        for k, v in results.items():
            if isinstance(v, float):
                tf.summary.scalar(k, v)
    writer.flush()
    io_utils.write_json(io_utils.join(output_dir, EVAL_RESULTS_FILE), results)
    # BERT's estimator lines, sorted: every metric as `eval_<metric>`,
    # `global_step`, and `loss`, which Estimator.evaluate reports as the mean
    # eval loss (equal to eval_loss in BERT's README output).
    bert = {k if k.startswith("eval_") else f"eval_{k}": v for k, v in results.items()
            if k not in ("global_step", "num_eval_examples")}
    bert["global_step"] = results.get("global_step", step)
    if "eval_loss" in results:
        bert["loss"] = results["eval_loss"]
    lines = [f"{k} = {bert[k]}" for k in sorted(bert)]
    io_utils.write_text(io_utils.join(output_dir, "eval_results.txt"),
                        "".join(line + "\n" for line in lines))
    logging.info("***** Eval results *****\n%s", "\n".join("  " + line for line in lines))


def _trained_steps(output_dir, artifact_config=None):
    """Steps of the run's latest checkpoint, else of the reloaded artifact, else 0."""
    latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
    if latest:
        return int(tf.train.load_checkpoint(latest).get_tensor(
            "step/.ATTRIBUTES/VARIABLE_VALUE"))
    return int((artifact_config or {}).get("global_step") or 0)
