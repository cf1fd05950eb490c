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
each global batch; only the chief writes to `output_dir` (`workers.py`).
Workers compare what they loaded before the first collective, so one
worker's bad input stops the whole job with its message.

In a sweep, trials share what they can (base weights, tokenized data, the
model and its traced functions) through `trial_cache.hooks()`: outside a
sweep every hook does the plain thing.
"""

import keras
import tensorflow as tf
from absl import logging

from bert_adapters import checkpoints, io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.model import trainable
from bert_adapters.model.layer_span import format_layer_span
from bert_adapters.ops import settings as op_settings
from bert_adapters.training import (distribution, evaluation, input_pipeline, packing,
                                    run_settings, train_stats, trial_cache, workers)
from bert_adapters.training.evaluation import EVAL_RESULTS_FILE
from bert_adapters.training.optimization import create_optimizer
from bert_adapters.training.run_settings import RUN_CONFIG_FILE, RunError
from bert_adapters.training.train_loop import (CHECKPOINT_DIR, loop_end, make_train_loop,
                                               make_train_step, run_steps)
from bert_adapters.training.workers import WorkerLostError, weights_digest

__all__ = ["run", "RunError", "WorkerLostError", "make_train_step", "make_train_loop",
           "loop_end", "weights_digest", "RUN_CONFIG_FILE", "PARAMS_FILE", "EVAL_RESULTS_FILE",
           "ARTIFACT_DIR", "CHECKPOINT_DIR"]

PARAMS_FILE = "params.json"
ARTIFACT_DIR = "task_artifact"


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
    run_settings.check_config(config)
    # The first TensorFlow call: multi-worker and TPU strategies must be made
    # before anything touches TensorFlow's context (see distribution.py).
    strategy = strategy or distribution.strategy_from_config(config)
    try:
        with run_settings.precision_policy(config.mixed_precision), \
                op_settings.use(run_settings.op_settings_for(config, strategy)), \
                workers.write_dir(strategy, output_dir) as write_dir:
            return _run(config, output_dir, write_dir, step_callback, strategy)
    except workers.LOST_WORKER_ERRORS as err:
        if not distribution.is_multi_worker(strategy):
            raise
        latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
        raise workers.lost_worker_error(strategy, err, latest) from None


def _run(config, output_dir, write_dir, step_callback, strategy):
    reuse = trial_cache.hooks()
    chief = distribution.is_chief(strategy)

    # === Strategy ===
    run_settings.check_batch_sizes(config, strategy.num_replicas_in_sync)
    reuse.set_seed(config.seed)

    # === Data ===
    config, artifact_config, kind, splits = _load_data(config, output_dir, strategy, reuse)

    # === Model ===
    model, encoder = _build_model(config, kind, strategy, reuse)
    fingerprint = base_fingerprint(encoder)
    _record_run(config, output_dir, strategy, model, encoder, kind, fingerprint)

    # === Train (and checkpoint) ===
    if config.do_train:
        step = _train(config, output_dir, write_dir, strategy, model, encoder, kind,
                      splits[kind.train_split], step_callback, reuse)
        if chief:
            _save_artifact(config, output_dir, model, encoder, kind, fingerprint, step)
    else:
        step = evaluation.trained_steps(output_dir, artifact_config)

    # === Evaluate, predict and write ===
    results = _evaluate_and_predict(config, write_dir, strategy, model, encoder, kind, splits)
    if results:
        results["global_step"] = step
        if chief:
            evaluation.write_eval_results(output_dir, results, step)
    return results


# === Data ===
def _load_data(config, output_dir, strategy, reuse):
    """(config, artifact config, task kind, splits), the same on every worker.

    What each worker reads on its own (settings, vocabulary, data files) is
    read before the first collective; then the workers compare notes, so one
    worker's bad input stops every worker with its message.
    """
    loaded, error = None, None
    try:
        if distribution.is_chief(strategy):
            io_utils.makedirs(output_dir)
        loaded = _load(config, reuse)
    except Exception as err:  # pylint: disable=broad-except
        error = err  # Told to the other workers, then raised.
    digest = ""
    if distribution.is_multi_worker(strategy) and error is None:
        digest = workers.inputs_digest(loaded[0], loaded[3])
    workers.agree_or_raise(strategy, digest, "loaded different settings or data",
                           "run the same command on the same files on every worker", error)
    return loaded


def _load(config, reuse):
    """Settings merged with --task_dir's artifact, the task kind and its data splits."""
    artifact_config = artifact.read_task_config(config.task_dir) if config.task_dir else None
    config = run_settings.merge_artifact_settings(config, artifact_config)
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

    splits = reuse.splits(kind, config, [vocab_file, lower_case], load_splits)
    return config, artifact_config, kind, splits


# === Model ===
def _build_model(config, kind, strategy, reuse):
    """(task model, encoder): the base with its adapters, what trains, the head, a reloaded artifact."""
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            config.encoder, adapter_size=config.adapter_size,
            adapter_init_scale=config.adapter_init_scale, adapter_layers=config.adapter_layers,
            init_checkpoint=config.init_checkpoint, bert_config_file=config.bert_config_file,
            vocab_file=config.vocab_file, checkpoint=reuse.base_checkpoint(config))
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
        return reuse.shared_model(config, kind, strategy, model, encoder)


def _record_run(config, output_dir, strategy, model, encoder, kind, fingerprint):
    """run_config.json and params.json, once every worker has the same base."""
    error = None
    try:
        run_settings.write_run_config(output_dir, config, encoder, fingerprint, kind,
                                      write=distribution.is_chief(strategy),
                                      replicas=strategy.num_replicas_in_sync)
    except Exception as err:  # pylint: disable=broad-except
        error = err
    workers.agree_or_raise(strategy, fingerprint, "loaded different base encoders",
                           "every worker must read the same --encoder/--init_checkpoint", error)
    report = trainable.parameter_report(model, encoder)
    if distribution.is_chief(strategy):
        io_utils.write_json(io_utils.join(output_dir, PARAMS_FILE), report)
    logging.info("Parameters: %s", report)


def _save_artifact(config, output_dir, model, encoder, kind, fingerprint, step):
    """The task artifact: only the trained weights, with what rebuilds the model around them."""
    artifact.save_artifact(io_utils.join(output_dir, ARTIFACT_DIR), model, encoder, {
        **kind.artifact_config(),
        "tuning": config.tuning, "num_tuned_layers": config.num_tuned_layers,
        "adapter_size": config.adapter_size, "adapter_init_scale": config.adapter_init_scale,
        "adapter_layers": format_layer_span(encoder.adapter_layers),
        "encoder_source": config.encoder, "init_checkpoint": config.init_checkpoint,
        "bert_config_file": config.bert_config_file, "vocab_file": config.vocab_file,
        "max_seq_length": config.max_seq_length, "global_step": step}, fingerprint)


# === Train ===
def _train(config, output_dir, write_dir, strategy, model, encoder, kind, train, step_callback,
           reuse):
    """Trains (or resumes) to the configured step count; returns it."""
    total_steps = input_pipeline.num_train_steps(
        train.num_rows, config.train_batch_size, config.num_train_epochs, config.max_train_steps)
    if total_steps < 1:
        raise RunError(f"{train.num_rows} training examples give no full batch of "
                       f"{config.train_batch_size}")
    # The learning-rate schedule spans the run (a capped run: up to its cap).
    with strategy.scope():
        optimizer, global_step = reuse.optimizer(
            model, config, total_steps, lambda: _new_optimizer(config, model, total_steps))
    checkpoint, manager = _checkpointing(output_dir, write_dir, model, encoder, optimizer,
                                         global_step)
    start = _restore(output_dir, strategy, checkpoint, global_step)
    if start >= total_steps:
        logging.info("Training already finished (%d steps)", start)
        return total_steps

    train_model, iterator = _training_data(config, strategy, model, encoder, kind, train,
                                           total_steps, start)
    inner = optimizer.inner_optimizer if config.mixed_precision == "fp16" else optimizer

    def learning_rate():  # A named function: AutoGraph reads its source.
        return inner.learning_rate

    def new_train_loop():
        return make_train_loop(strategy, train_model, optimizer, kind.loss,
                               config.train_batch_size, global_step, config.jit_compile,
                               learning_rate=learning_rate)

    train_loop = reuse.train_loop(model, optimizer, new_train_loop)
    meter = train_stats.TrainMeter(config.train_batch_size, start)
    run_steps(config, output_dir, strategy, train_loop, iterator, manager, start, total_steps,
              step_callback, meter)
    if distribution.is_chief(strategy):
        train_stats.write(output_dir, meter.record())
    workers.check_weights_agree(strategy, model, encoder)
    return total_steps


def _new_optimizer(config, model, total_steps):
    """(optimizer, global_step) for the run's trained weights, built."""
    optimizer = create_optimizer(
        config.optimizer, config.learning_rate, total_steps, config.warmup_proportion,
        config.weight_decay, gradients_reduced_by_caller=True)
    if config.mixed_precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    return optimizer, global_step


def _checkpointing(output_dir, write_dir, model, encoder, optimizer, global_step):
    """(checkpoint, manager): the step, the optimiser, dropout seeds and the trained weights.

    Every worker saves to its own write_dir (the chief's is output_dir; the
    others' are deleted) and restores from the chief's.
    """
    seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
    checkpoint = tf.train.Checkpoint(
        step=global_step, optimizer=optimizer, rng=seed_states,
        trained={name.replace("/", "."): v
                 for name, v in artifact.trained_weight_map(model, encoder).items()})
    manager = tf.train.CheckpointManager(
        checkpoint, io_utils.join(write_dir, CHECKPOINT_DIR), max_to_keep=2)
    return checkpoint, manager


def _restore(output_dir, strategy, checkpoint, global_step):
    """The step training starts after: the chief's latest checkpoint's, else 0."""
    latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", latest, int(global_step.numpy()))
    start = int(global_step.numpy())
    workers.agree_or_raise(
        strategy, str(start), "resume from different steps",
        f"every worker must read the chief's checkpoints in {output_dir} (a shared file "
        f"system or gs://)")
    return start


def _training_data(config, strategy, model, encoder, kind, train, total_steps, start):
    """(model to train, iterator) over the run's batches from step `start` on."""
    lengths = input_pipeline.sequence_lengths(train.features)
    rows = input_pipeline.train_index_matrix(
        train.num_rows, config.train_batch_size, total_steps, config.seed,
        lengths=lengths if config.group_by_length else None)
    if config.pack_sequences:  # Same examples per step, several per row.
        train_model = packing.packed_train_model(kind, model, encoder,
                                                 distribution.needs_static_shapes(strategy))
        dataset = packing.make_packed_dataset(strategy, train.features, train.labels,
                                              rows[start:])
    else:
        train_model = model
        dataset = input_pipeline.make_dataset(
            strategy, train.features, train.labels, rows[start:],
            distribution.needs_static_shapes(strategy))
    return train_model, iter(dataset)


# === Evaluate and predict ===
def _evaluate_and_predict(config, write_dir, strategy, model, encoder, kind, splits):
    """The eval results (primary split unprefixed); writes prediction files.

    Every worker computes every output (its replicas' share, gathered); only
    the chief's files are kept.
    """
    static_shapes = distribution.needs_static_shapes(strategy)
    eval_model = (packing.packed_train_model(kind, model, encoder, static_shapes)
                  if config.pack_sequences else model)   # Packed evaluation rows too.
    outputs = evaluation.OutputCache(strategy, eval_model, splits, config.eval_batch_size,
                                     static_shapes)
    results = {}
    if config.do_eval:
        for i, key in enumerate(kind.eval_splits):
            values = kind.evaluate(splits[key], outputs[key])
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
    return results
