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
"""

import contextlib
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import artifact, checkpoints, io_utils, tuning
from bert_adapters.fingerprint import base_fingerprint
from bert_adapters.tokenization import BertTokenizer
from bert_adapters.training import input_pipeline
from bert_adapters.training.distribution import get_strategy, needs_static_shapes
from bert_adapters.training.optimization import create_optimizer

RUN_CONFIG_FILE = "run_config.json"
PARAMS_FILE = "params.json"
EVAL_RESULTS_FILE = "eval_results.json"
ARTIFACT_DIR = "task_artifact"
CHECKPOINT_DIR = "checkpoints"
PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class RunError(ValueError):
    """A problem with the run's settings or inputs, explained for the user."""


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
    with _precision_policy(config.mixed_precision):
        return _run(config, output_dir, step_callback, strategy)


def _run(config, output_dir, step_callback, strategy):
    # === Strategy ===
    # First: multi-worker and TPU strategies must be made before anything
    # else touches TensorFlow's context (seeds, devices, ops).
    strategy = strategy or get_strategy(config.distribution_strategy, config.tpu, config.num_gpus)
    static_shapes = needs_static_shapes(strategy)
    keras.utils.set_random_seed(config.seed)
    io_utils.makedirs(output_dir)
    artifact_config = artifact.read_task_config(config.task_dir) if config.task_dir else None
    config = _merge_artifact_settings(config, artifact_config)
    kind = config.task_kind(artifact_config)
    if artifact_config is not None:
        kind.check_artifact(artifact_config)

    # === Data ===
    vocab_file, lower_case = checkpoints.locate_vocab(
        config.encoder, vocab_file=config.vocab_file, init_checkpoint=config.init_checkpoint)
    if config.do_lower_case is not None and config.do_lower_case != lower_case:
        raise RunError(
            f"--do_lower_case={config.do_lower_case} contradicts the vocabulary {vocab_file}, "
            f"which is {'uncased' if lower_case else 'cased'}: use "
            f"--do_lower_case={lower_case} (or leave it out)")
    tokenizer = BertTokenizer(vocab_file, lower_case=lower_case,
                              max_seq_length=config.max_seq_length)
    splits = kind.load_splits(tokenizer)

    # === Model ===
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            config.encoder, adapter_size=config.adapter_size,
            adapter_init_scale=config.adapter_init_scale, init_checkpoint=config.init_checkpoint,
            bert_config_file=config.bert_config_file, vocab_file=config.vocab_file)
        if config.max_seq_length > encoder.config.max_sequence_length:
            raise RunError(
                f"--max_seq_length={config.max_seq_length} exceeds the encoder's "
                f"{encoder.config.max_sequence_length} position embeddings")
        tuning.apply_tuning(encoder, config.tuning, config.num_tuned_layers)
        model = kind.build_model(encoder)
        if config.task_dir:
            artifact.load_artifact_weights(model, encoder, config.task_dir)
    fingerprint = base_fingerprint(encoder)
    _write_run_config(output_dir, config, encoder, fingerprint, kind)
    report = tuning.parameter_report(model, encoder)
    io_utils.write_json(io_utils.join(output_dir, PARAMS_FILE), report)
    logging.info("Parameters: %s", report)

    # === Train ===
    if config.do_train:
        steps = _train(config, output_dir, strategy, model, encoder, kind,
                       splits[kind.train_split], static_shapes, step_callback)
        artifact.save_artifact(io_utils.join(output_dir, ARTIFACT_DIR), model, encoder, {
            **kind.artifact_config(),
            "tuning": config.tuning, "num_tuned_layers": config.num_tuned_layers,
            "adapter_size": config.adapter_size,
            "adapter_init_scale": config.adapter_init_scale, "encoder_source": config.encoder,
            "init_checkpoint": config.init_checkpoint, "bert_config_file": config.bert_config_file,
            "vocab_file": config.vocab_file, "max_seq_length": config.max_seq_length,
            "global_step": steps}, fingerprint)

    # === Evaluate and predict ===
    step = _trained_steps(output_dir, artifact_config)
    outputs = _OutputCache(strategy, model, splits, config.eval_batch_size, static_shapes)
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
            values = kind.write_predictions(output_dir, splits[key], outputs[key])
            if values and not config.do_eval:
                # Predicted data that has answers is scored as it is predicted.
                results.update(values)
                results["num_eval_examples"] = kind.num_examples(splits[key])
    if results:
        results["global_step"] = step
        _write_eval_results(output_dir, results, step)
    return results


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
    for field in ("max_seq_length", "train_batch_size", "eval_batch_size"):
        if getattr(config, field) < 1:
            raise RunError(f"--{field} must be positive, got {getattr(config, field)}")
    if config.learning_rate <= 0 or config.num_train_epochs <= 0:
        raise RunError("--learning_rate and --num_train_epochs must be positive")
    if not config.task_dir:
        tuning.check_tuning(config.tuning, config.adapter_size, 10**6, config.num_tuned_layers)


def _merge_artifact_settings(config, artifact_config):
    """With --task_dir, the model's shape (and, unless given, its base) come from the artifact."""
    if artifact_config is None:
        return config
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
        adapter_init_scale=artifact_config["adapter_init_scale"])


def _write_run_config(output_dir, config, encoder, fingerprint, kind):
    """Writes run_config.json; a resumed run must not change training settings."""
    path = io_utils.join(output_dir, RUN_CONFIG_FILE)
    record = {"settings": config.to_json(), "encoder_source": getattr(encoder, "source", None),
              "base_fingerprint": fingerprint, "task_kind": kind.name, **kind.record(),
              "encoder_config": encoder.config.architecture()}
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


# === Training ===
def _train(config, output_dir, strategy, model, encoder, kind, train, static_shapes,
           step_callback):
    """Trains (or resumes) to the configured step count; returns it."""
    num_examples = train.num_rows
    total_steps = input_pipeline.num_train_steps(
        num_examples, config.train_batch_size, config.num_train_epochs, config.max_train_steps)
    if total_steps < 1:
        raise RunError(f"{num_examples} training examples give no full batch of "
                       f"{config.train_batch_size}")
    # The learning-rate schedule spans the uncapped run, as BERT, unless capped.
    schedule_steps = total_steps
    with strategy.scope():
        optimizer = create_optimizer(
            config.optimizer, config.learning_rate, schedule_steps, config.warmup_proportion,
            config.weight_decay, gradients_reduced_by_caller=True)
        if config.mixed_precision == "fp16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        trainable = model.trainable_variables
        optimizer.build(trainable)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
    checkpoint = tf.train.Checkpoint(
        step=global_step, optimizer=optimizer, rng=seed_states,
        trained={name.replace("/", "."): v
                 for name, v in artifact.trained_weight_map(model, encoder).items()})
    manager = tf.train.CheckpointManager(
        checkpoint, io_utils.join(output_dir, CHECKPOINT_DIR), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", manager.latest_checkpoint,
                     int(global_step.numpy()))
    start = int(global_step.numpy())
    if start >= total_steps:
        logging.info("Training already finished (%d steps)", start)
        return total_steps

    lengths = input_pipeline.sequence_lengths(train.features)
    rows = input_pipeline.train_index_matrix(
        num_examples, config.train_batch_size, total_steps, config.seed,
        lengths=lengths if config.group_by_length else None)
    dataset = input_pipeline.make_dataset(
        strategy, train.features, train.labels, rows[start:], static_shapes)
    iterator = iter(dataset)
    fp16 = config.mixed_precision == "fp16"
    train_step = make_train_step(strategy, model, optimizer, kind.loss, config.train_batch_size,
                                 global_step, config.jit_compile)

    writer = tf.summary.create_file_writer(io_utils.join(output_dir, "logs", "train"))
    progress = keras.utils.Progbar(total_steps, stateful_metrics=["loss", "lr"],
                                   interval=5.0)
    inner = optimizer.inner_optimizer if fp16 else optimizer
    started, window_loss, window = time.time(), 0.0, 0
    for step in range(start + 1, total_steps + 1):
        loss = float(train_step(iterator))
        window_loss, window = window_loss + loss, window + 1
        if step % config.log_every_steps == 0 or step == total_steps:
            lr = float(inner.learning_rate)
            with writer.as_default(step=step):
                tf.summary.scalar("loss", window_loss / window)
                tf.summary.scalar("learning_rate", lr)
            progress.update(step, [("loss", window_loss / window), ("lr", lr)])
            window_loss, window = 0.0, 0
        if step % config.save_checkpoints_steps == 0 or step == total_steps:
            manager.save(checkpoint_number=step)
        if step_callback is not None:
            step_callback(step)
    writer.flush()
    elapsed = time.time() - started
    logging.info("Trained %d steps in %.1f s (%.1f examples/s)", total_steps - start, elapsed,
                 (total_steps - start) * config.train_batch_size / max(elapsed, 1e-9))
    return total_steps


def make_train_step(strategy, model, optimizer, loss_fn, global_batch_size, global_step,
                    jit_compile=False):
    """A tf.function `train_step(iterator) -> mean loss` over the strategy's replicas.

    Each replica's loss is summed over its examples and divided by the global
    batch size, gradients are summed across replicas before the optimiser
    clips their global norm (see optimization._ReducedGradientsMixin), and
    `global_step` is incremented. `jit_compile` XLA-compiles the forward and
    backward pass (not the cross-replica update).
    """
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

    @tf.function
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

    Outputs with a sequence axis (span logits `[batch, seq, 2]`) are padded
    with zeros back to the features' full width, so batches of different
    widths line up.
    """
    num_rows, width = features["input_mask"].shape
    # Batches of similar lengths pad little; TPUs pad everything to one shape anyway.
    lengths = None if static_shapes else input_pipeline.sequence_lengths(features)
    rows = input_pipeline.eval_index_matrix(num_rows, batch_size, lengths)
    iterator = iter(input_pipeline.make_dataset(strategy, features, None, rows, static_shapes))
    predict_step = _predict_step(strategy, model)
    outputs = []
    for _ in range(len(rows)):
        out = predict_step(iterator).numpy()
        if out.ndim >= 3 and out.shape[1] < width:
            pad = [(0, 0), (0, width - out.shape[1])] + [(0, 0)] * (out.ndim - 2)
            out = np.pad(out, pad)
        outputs.append(out)
    return input_pipeline.scatter_outputs(rows, np.concatenate(outputs))


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
