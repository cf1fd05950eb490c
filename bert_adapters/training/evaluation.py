"""Model outputs over a split, in row order, and the eval results files.

Outputs are computed once per split (`OutputCache`) even when a run both
evaluates and predicts it. Per-token outputs (span logits) are masked off
each row's tokens, so a row's outputs depend neither on its batch's width
nor on packing.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.training import input_pipeline, packing
from bert_adapters.training.train_loop import CHECKPOINT_DIR

EVAL_RESULTS_FILE = "eval_results.json"


class OutputCache:
    """Model outputs per split, computed once even when evaluated and predicted."""

    def __init__(self, strategy, model, splits, batch_size, static_shapes):
        self._args = (strategy, model, batch_size, static_shapes)
        self._splits = splits
        self._outputs = {}

    def __getitem__(self, key):
        if key not in self._outputs:
            self._outputs[key] = predict(self._args[0], self._args[1],
                                          self._splits[key].features, *self._args[2:])
        return self._outputs[key]


def predict(strategy, model, features, batch_size, static_shapes):
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


def write_eval_results(output_dir, results, step):
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


def trained_steps(output_dir, artifact_config=None):
    """Steps of the run's latest checkpoint, else of the reloaded artifact, else 0."""
    latest = tf.train.latest_checkpoint(io_utils.join(output_dir, CHECKPOINT_DIR))
    if latest:
        return int(tf.train.load_checkpoint(latest).get_tensor(
            "step/.ATTRIBUTES/VARIABLE_VALUE"))
    return int((artifact_config or {}).get("global_step") or 0)
