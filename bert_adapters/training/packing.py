"""Sequence packing: several short examples in one row (`--pack_sequences`).

GLUE sentences are much shorter than `max_seq_length`; padding each batch to
its longest example still wastes most of a batch's tokens on short-text
tasks. Packing lays the examples of one step side by side in rows as wide as
the step's longest example (first fit, longest first), and the packed model
(`packed_classifier.PackedClassifier`) keeps them apart:

  - a block-diagonal attention mask: a token sees only its own example's
    tokens (`input_example_ids`: 1, 2, ... per example in a row, 0 on padding);
  - position ids restarting at 0 for every example (`input_position_ids`),
    token types as each example's own;
  - the head reads each example's own [CLS] (`cls_positions`: (row, column)
    of every example, in the step's example order).

A step still holds the same examples as without packing (the same index
matrix), so the loss is the same sum over the same examples divided by the
same batch size: only the layout changes (and, with dropout on, the dropout
masks). Outputs come back one per example, in order, as unpacked.
"""

import numpy as np
import tensorflow as tf

from bert_adapters.bert_encoder import INPUT_NAMES
from bert_adapters.training import input_pipeline

PACKED_NAMES = INPUT_NAMES + ("input_position_ids", "input_example_ids")


def pack_examples(features, indices, max_width, pad_multiple=8):
    """Packs the examples `indices` (-1: a padding slot) into rows.

    Args:
        features: {name: int32 `[num_examples, max_seq_length]`} (`INPUT_NAMES`).
        indices: int `[n]` example indices; -1 entries get no tokens (their
            [CLS] position points at (0, 0); outputs there are discarded).
        max_width: the longest row allowed (the encoder's `max_seq_length`);
            rows are as wide as the step's longest example, rounded up.
        pad_multiple: rows are padded to a multiple of this.

    Returns:
        {name: int32 `[rows, width]`} for `PACKED_NAMES`, plus `cls_positions`
        int32 `[n, 2]`.
    """
    lengths = features["input_mask"].sum(axis=1)
    valid = [i for i in range(len(indices)) if indices[i] >= 0]
    # Rows as wide as the step's longest example (rounded up): attention
    # costs width^2 per row, so wider rows would cost more than padding.
    longest = max([int(lengths[indices[s]]) for s in valid] or [1])
    capacity = min(max_width, -(-longest // pad_multiple) * pad_multiple)
    # First fit, longest first: rows[r] = [slot, ...], fill[r] = tokens used.
    rows, fill = [], []
    for slot in sorted(valid, key=lambda s: -int(lengths[indices[s]])):
        length = int(lengths[indices[slot]])
        for r, used in enumerate(fill):
            if used + length <= capacity:
                rows[r].append(slot)
                fill[r] += length
                break
        else:
            rows.append([slot])
            fill.append(length)
    if not rows:
        rows, fill = [[]], [1]
    width = min(max_width, -(-max(fill) // pad_multiple) * pad_multiple)
    out = {name: np.zeros((len(rows), width), np.int32) for name in PACKED_NAMES}
    cls_positions = np.zeros((len(indices), 2), np.int32)
    for r, slots in enumerate(rows):
        offset = 0
        for k, slot in enumerate(slots):
            example, length = indices[slot], int(lengths[indices[slot]])
            span = slice(offset, offset + length)
            out["input_word_ids"][r, span] = features["input_word_ids"][example, :length]
            out["input_type_ids"][r, span] = features["input_type_ids"][example, :length]
            out["input_mask"][r, span] = 1
            out["input_position_ids"][r, span] = np.arange(length)
            out["input_example_ids"][r, span] = k + 1
            cls_positions[slot] = (r, offset)
            offset += length
    out["cls_positions"] = cls_positions
    return out


def packed_tokens(features, index_matrix, max_width, pad_multiple=8):
    """Padded tokens per step (rows x width) with packing, `[num_steps]`."""
    return np.array([int(np.prod(pack_examples(features, row, max_width, pad_multiple)
                                 ["input_mask"].shape)) for row in index_matrix])


def make_packed_dataset(strategy, features, labels, index_matrix, pad_multiple=8):
    """As `input_pipeline.make_dataset`, each replica's share of a step packed.

    Each element is `(inputs, labels, valid)` for one replica: `inputs` holds
    `PACKED_NAMES` `[rows, width]` and `cls_positions` `[per_replica, 2]`;
    `labels` and `valid` are per example, in the row's example order, as
    unpacked. Rows and widths vary from step to step (no static shapes).
    """
    by_replica = input_pipeline.split_by_replica(strategy, index_matrix)
    per_replica = by_replica.shape[2]
    max_width = features["input_mask"].shape[1]
    label_array = (np.asarray(labels) if labels is not None
                   else np.zeros(len(features["input_mask"]), np.int64))
    label_spec = tf.TensorSpec((per_replica,) + label_array.shape[1:],
                               tf.as_dtype(label_array.dtype))
    signature = (
        {**{name: tf.TensorSpec((None, None), tf.int32) for name in PACKED_NAMES},
         "cls_positions": tf.TensorSpec((per_replica, 2), tf.int32)},
        label_spec, tf.TensorSpec((per_replica,), tf.float32))

    def dataset_fn(input_context):
        local, _ = input_pipeline.local_rows(by_replica, input_context)

        def generate():
            for row in local:
                safe = np.where(row >= 0, row, 0)
                yield (pack_examples(features, row, max_width, pad_multiple),
                       label_array[safe], (row >= 0).astype(np.float32))

        return input_pipeline.finish(
            tf.data.Dataset.from_generator(generate, output_signature=signature))

    return strategy.distribute_datasets_from_function(dataset_fn)


def packed_train_model(kind, model, encoder, static_shapes=False):
    """The model packed steps call: `PackedClassifier` on `model`'s layers.

    One per task model (kept while the model lives), so that training and
    evaluation, and the trials of a sweep that share the model, share its
    traced functions.
    """
    from bert_adapters import heads  # pylint: disable=import-outside-toplevel
    from bert_adapters.packed_classifier import PackedClassifier  # pylint: disable=import-outside-toplevel

    if kind.name != heads.CLASSIFICATION:
        # SQuAD's loss is a softmax over every position of a window, padding
        # included (as BERT's): packed rows cannot give the same loss.
        raise ValueError(f"--pack_sequences packs classification examples; the {kind.name} "
                         f"task kind is trained unpacked (drop --pack_sequences)")
    if static_shapes:
        raise ValueError("--pack_sequences needs rows of varying shape: not on TPUs")
    kept = _PACKED.get(id(model))
    if kept is None or kept[0] is not model:
        kept = (model, PackedClassifier(model, encoder))
        _PACKED[id(model)] = kept
        while len(_PACKED) > _MAX_PACKED:  # The oldest first (a sweep keeps two models).
            del _PACKED[next(iter(_PACKED))]
    return kept[1]


def is_packed(model):
    """True for a model that takes packed rows (`packed_train_model`)."""
    from bert_adapters.packed_classifier import PackedClassifier  # pylint: disable=import-outside-toplevel

    return isinstance(model, PackedClassifier)


_PACKED = {}
_MAX_PACKED = 2
