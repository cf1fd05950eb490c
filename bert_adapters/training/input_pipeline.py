"""Examples -> token ids -> deterministic, resumable, distributed batches.

Text is tokenized once into `[num_examples, max_seq_length]` arrays. The
training stream is then fixed in advance as a matrix of example indices, one
row per global step, drawn from `seed` and the epoch number: a job restarted
at step s simply starts at row s, so a resumed run sees exactly the batches
an uninterrupted one would.

Batches are padded only to their longest sequence (rounded up to a multiple
of `pad_multiple`): GLUE sentences are much shorter than 128 tokens, so this
cuts the work directly. TPUs need static shapes: pad to max_seq_length there.
"""

import numpy as np
import tensorflow as tf

from bert_adapters.model.bert_encoder import INPUT_NAMES


def sequence_lengths(features):
    return features["input_mask"].sum(axis=1)


def num_train_steps(num_examples, batch_size, num_epochs, max_train_steps=None):
    """BERT's count: int(num_examples / batch_size * num_epochs), capped."""
    steps = int(num_examples / batch_size * num_epochs)
    if max_train_steps:
        steps = min(steps, max_train_steps)
    return steps


def train_index_matrix(num_examples, batch_size, num_steps, seed, lengths=None,
                       group_size=50):
    """`[num_steps, batch_size]` example indices: each epoch a fresh permutation.

    Incomplete batches at the end of an epoch are dropped (as BERT's TPU input
    function does). With `lengths`, each epoch's permutation is cut into groups
    of `group_size` batches, each group sorted by length and cut into batches,
    and the batch order shuffled: batches of similar lengths pad less.
    """
    per_epoch = num_examples // batch_size
    if per_epoch == 0:
        raise ValueError(f"train_batch_size={batch_size} is larger than the training set "
                         f"({num_examples} examples)")
    rows = []
    epoch = 0
    while len(rows) < num_steps:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(num_examples)[:per_epoch * batch_size]
        if lengths is not None:
            span = group_size * batch_size
            groups = [order[i:i + span] for i in range(0, len(order), span)]
            order = np.concatenate([g[np.argsort(-lengths[g], kind="stable")] for g in groups])
            batches = order.reshape(per_epoch, batch_size)
            batches = batches[rng.permutation(per_epoch)]
        else:
            batches = order.reshape(per_epoch, batch_size)
        rows.extend(batches)
        epoch += 1
    return np.stack(rows[:num_steps]).astype(np.int64)


def eval_index_matrix(num_examples, batch_size, lengths=None):
    """`[num_batches, batch_size]` indices covering every example once; -1 pads.

    With `lengths`, examples are ordered by length so that each batch pads
    little (outputs are put back in example order by the caller, see
    `scatter_outputs`); otherwise in file order.
    """
    num_batches = max(1, -(-num_examples // batch_size))
    flat = np.full(num_batches * batch_size, -1, np.int64)
    flat[:num_examples] = (np.arange(num_examples) if lengths is None
                           else np.argsort(lengths, kind="stable"))
    return flat.reshape(num_batches, batch_size)


def scatter_outputs(index_matrix, outputs):
    """Puts per-row outputs `[num_batches * batch_size, ...]` back in example order."""
    flat = index_matrix.reshape(-1)
    valid = flat >= 0
    result = np.empty((int(valid.sum()),) + outputs.shape[1:], outputs.dtype)
    result[flat[valid]] = outputs[valid]
    return result


def batch_widths(index_matrix, lengths, max_width, pad_multiple=8):
    """The padded width of each global batch: its longest sequence, rounded up.

    One width per global batch (not per replica), so that every replica's
    outputs of one step have the same shape and can be gathered.
    """
    safe = np.where(index_matrix >= 0, index_matrix, 0)
    longest = np.where(index_matrix >= 0, lengths[safe], 1).max(axis=1)
    widths = (longest + pad_multiple - 1) // pad_multiple * pad_multiple
    return np.clip(widths, 1, max_width).astype(np.int32)


def make_dataset(strategy, features, labels, index_matrix, static_shapes=False, pad_multiple=8):
    """A distributed dataset: each row of `index_matrix` is one global batch.

    Each element is `(inputs, labels, valid)` for one replica: `valid` is 0
    for the -1 padding of evaluation batches. `labels` may have any trailing
    shape (`[n]` classes, `[n, 2]` span positions); None gives zeros. Rows
    are split into contiguous per-replica slices in replica order, so
    `strategy.gather(..., axis=0)` gives results back in example order.
    Without `static_shapes`, every replica of a step pads to that global
    batch's longest sequence.
    """
    by_replica = split_by_replica(strategy, index_matrix)
    max_width = features["input_mask"].shape[1]
    widths = (np.full(len(index_matrix), max_width, np.int32) if static_shapes else
              batch_widths(index_matrix, sequence_lengths(features), max_width, pad_multiple))
    feature_table = {name: tf.constant(features[name]) for name in INPUT_NAMES}
    label_table = tf.constant(labels if labels is not None
                              else np.zeros(len(features["input_mask"]), np.int64))

    def dataset_fn(input_context):
        rows, local_count = local_rows(by_replica, input_context)
        ds = tf.data.Dataset.from_tensor_slices((rows, np.repeat(widths, local_count)))

        def gather(indices, width):
            valid = indices >= 0
            safe = tf.where(valid, indices, tf.zeros_like(indices))
            inputs = {n: tf.gather(t, safe) for n, t in feature_table.items()}
            if not static_shapes:
                inputs = {n: t[:, :width] for n, t in inputs.items()}
            return inputs, tf.gather(label_table, safe), tf.cast(valid, tf.float32)

        return finish(ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))

    return distribute(strategy, dataset_fn)


def split_by_replica(strategy, index_matrix):
    """`[num_steps, num_replicas, per_replica]`: each global batch cut in replica order."""
    num_replicas = strategy.num_replicas_in_sync
    global_batch = index_matrix.shape[1]
    if global_batch % num_replicas:
        raise ValueError(f"batch size {global_batch} is not divisible by the "
                         f"{num_replicas} replicas")
    return index_matrix.reshape(len(index_matrix), num_replicas, global_batch // num_replicas)


def local_rows(by_replica, input_context):
    """This worker's replicas' rows, in order (each element feeds the next replica).

    Returns `([num_steps * local_count, per_replica], local_count)`.
    """
    local_count = by_replica.shape[1] // input_context.num_input_pipelines
    first = input_context.input_pipeline_id * local_count
    local = by_replica[:, first:first + local_count]
    return local.reshape(-1, by_replica.shape[2]), local_count


def finish(ds):
    """Deterministic, not auto-sharded (rows are already this worker's), prefetched.

    Without tf.data's autotuning (see `distribute`): a map with
    `num_parallel_calls=AUTOTUNE` then runs on every core, and two batches
    are kept ready, which is all a step on in-memory arrays needs.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(PREFETCH_BATCHES)


PREFETCH_BATCHES = 2


def distribute(strategy, dataset_fn):
    """`strategy.distribute_datasets_from_function`, with no autotuning thread.

    An autotuned tf.data iterator runs a model thread that wakes at growing
    intervals (up to a minute) and that the iterator's destructor waits for:
    deleting an iterator used for a few seconds blocked the process,
    idle, for 1.5-7 s (measured on TF 2.21; after every training run and
    every evaluation, and in a sweep after each trial's). `finish` turns
    autotuning off for our datasets; the per-device datasets that
    tf.distribute builds on top (a generator and a prefetch of fixed size,
    nothing to tune) get default options, so their autotuning is turned off
    here too.
    """
    _device_datasets_untuned()
    return strategy.distribute_datasets_from_function(dataset_fn)


def _device_datasets_untuned():
    """Wraps tf.distribute's per-device dataset builder (private) once, if present."""
    from tensorflow.python.data.ops import multi_device_iterator_ops as ops_module  # pylint: disable=import-outside-toplevel

    build = getattr(ops_module, "_create_device_dataset", None)
    if build is None or getattr(build, "untuned", False):
        return

    def untuned(*args, **kwargs):
        options = tf.data.Options()
        options.autotune.enabled = False
        return build(*args, **kwargs).with_options(options)

    untuned.untuned = True
    ops_module._create_device_dataset = untuned  # pylint: disable=protected-access
