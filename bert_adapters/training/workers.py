"""What the workers of a multi-worker job agree on, and where each writes.

With `multi_worker_mirrored` every worker runs the same `trainer.run` on its
share of each global batch. Workers compare short notes (digests of what they
loaded, the step they resume from, the weights they end with) at fixed points
of the program; `agree_or_raise` is that comparison. Only the chief writes to
the output directory; the others write to a private temporary directory that
is removed when the run ends (TF's multi-worker rule: every worker saves,
only the chief's files are kept).
"""

import contextlib
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters.checkpoints import artifact
from bert_adapters.training import distribution
from bert_adapters.training.run_settings import RunError


class WorkerLostError(RunError):
    """Another worker of a multi-worker job stopped: restart them all to resume."""


# What a collective raises when a peer is gone (TF's coordination service
# stops every worker within seconds of a missed heartbeat).
LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError,
                      tf.errors.DeadlineExceededError, tf.errors.CancelledError)

# Settings that shape every worker's sequence of collectives and updates
# (paths may differ between machines; the data they name is compared itself).
AGREED_FIELDS = (
    "tuning", "num_tuned_layers", "adapter_size", "max_seq_length", "train_batch_size",
    "eval_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion", "optimizer",
    "weight_decay", "seed", "max_train_steps", "group_by_length", "do_train", "do_eval",
    "do_predict", "mixed_precision", "jit_compile", "iterations_per_loop",
    "save_checkpoints_steps", "fast_dropout", "adapter_layers")


def agree_or_raise(strategy, note, disagreement, remedy, error=None):
    """Every worker's `note`, gathered; RunError if they differ.

    Args:
        note: this worker's short note ("" where only errors are compared).
        disagreement: what differing notes mean ("loaded different base encoders").
        remedy: what the user should do about it.
        error: the exception this worker met since the last comparison, told
            to the others before it is raised (`distribution.agree`).
    """
    notes = distribution.agree(strategy, error, note)
    _raise_if_differ(notes, disagreement, remedy)
    return notes


def _raise_if_differ(notes, disagreement, remedy):
    if len(set(notes)) > 1:
        by_worker = ", ".join(f"worker {i}: {n[:16]}" for i, n in enumerate(notes))
        raise RunError(f"the workers {disagreement} ({by_worker}): {remedy}")


def inputs_digest(config, splits):
    """One digest of the settings and tokenized data every worker must share."""
    items = [{f: getattr(config, f) for f in AGREED_FIELDS}]
    for key in sorted(splits):
        split = splits[key]
        items += [key] + [split.features[n] for n in sorted(split.features)]
        if split.labels is not None:
            items.append(np.asarray(split.labels))
    return distribution.digest_arrays(*items)


def weights_digest(weights):
    """sha256 hex of {name: array} as float32, in name order (what workers compare)."""
    items = []
    for name in sorted(weights):
        items += [name, np.asarray(weights[name], np.float32)]
    return distribution.digest_arrays(*items)


def check_weights_agree(strategy, model, encoder):
    """Logs the trained weights' digest; RunError if the workers' differ."""
    if not distribution.is_multi_worker(strategy):
        return
    weights = artifact.trained_weight_map(model, encoder)
    digest = weights_digest({name: v.numpy() for name, v in weights.items()})
    notes = distribution.agree(strategy, note=digest)
    logging.info("Trained weights: sha256:%s (worker %d of %d)", digest,
                 distribution.worker_index(strategy), len(notes))
    _raise_if_differ(notes, "ended training with different weights",
                     "data-parallel training went out of sync")


def lost_worker_error(strategy, err, latest_checkpoint):
    """The WorkerLostError telling the user how to resume."""
    first_lines = " ".join([line.strip() for line in str(err.message).splitlines()
                            if line.strip()][:2])
    return WorkerLostError(
        f"worker {distribution.worker_index(strategy)} lost the other workers "
        f"({first_lines}); restart every worker with the same command: "
        f"training resumes from {latest_checkpoint or 'the start (no checkpoint yet)'}")


@contextlib.contextmanager
def write_dir(strategy, output_dir):
    """`output_dir` on the chief; a private temporary directory on other workers."""
    if distribution.is_chief(strategy):
        yield output_dir
        return
    scratch = tempfile.mkdtemp(prefix=f"bert_adapters_worker{distribution.worker_index(strategy)}_")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
