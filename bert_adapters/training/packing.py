"""Sequence packing: several short examples in one row (`--pack_sequences`).

GLUE sentences are much shorter than `max_seq_length`; padding each batch to
its longest example still wastes most of a batch's tokens on short-text
tasks, and SQuAD's last window of each context is often short. Packing lays
the examples of one step side by side in rows as wide as the step's longest
example (first fit, longest first), and the packed model
(`packed_classifier.PackedClassifier` for classification,
`packed_classifier.PackedSpanModel` for SQuAD windows) keeps them apart:

  - a block-diagonal attention mask: a token sees only its own example's
    tokens (`input_example_ids`: 1, 2, ... per example in a row, 0 on padding);
  - position ids restarting at 0 for every example (`input_position_ids`),
    token types as each example's own;
  - `cls_positions`: (row, column) of every example's first token ([CLS]), in
    the step's example order. The classifier reads its [CLS]; the span model
    cuts each window's logits out of its row from there, so start/end labels
    (positions in the window) apply unchanged.

A step still holds the same examples as without packing (the same index
matrix), so the loss is the same sum over the same examples divided by the
same batch size: only the layout changes (and, with dropout on, the dropout
masks). Outputs come back one per example, in order, as unpacked.

Span loss: BERT's is a softmax over all `max_seq_length` positions of a
window, padding included. Packed rows have no padding positions to give, so
the packed span loss is the softmax over the window's own tokens (positions
past them get logit -1e9, `heads.MASKED_LOGIT`): it equals the unpacked loss
with the padding positions' logits masked to -1e9, not BERT's. Unpacked
training (the default) is unchanged: its softmax includes the padding
positions, as BERT's (up to `max_seq_length` with static shapes, as BERT's;
up to the batch's longest window otherwise). Evaluation ranks a window's own
tokens only, packed or not (see `evaluation.predict`).
"""

import numpy as np
import tensorflow as tf

from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.model.packed_models import PACKED_MODELS, PackedTaskModel
from bert_adapters.training import input_pipeline

PACKED_NAMES = INPUT_NAMES + ("input_position_ids", "input_example_ids")


def pack_examples(features, indices, max_width, pad_multiple=8, width=None):
    """Packs the examples `indices` (-1: a padding slot) into rows.

    Args:
        features: {name: int32 `[num_examples, max_seq_length]`} (`INPUT_NAMES`).
        indices: int `[n]` example indices; -1 entries get no tokens (their
            [CLS] position points at (0, 0); outputs there are discarded).
        max_width: the longest row allowed (the encoder's `max_seq_length`).
        pad_multiple: rows are padded to a multiple of this.
        width: the rows' width, at least the longest example's; by default
            the longest example of `indices`, rounded up to `pad_multiple`
            (at most `max_width`): attention costs width^2 per row, so wider
            rows would cost more than padding.

    Returns:
        {name: int32 `[rows, width]`} for `PACKED_NAMES`, plus `cls_positions`
        int32 `[n, 2]`.
    """
    lengths = input_pipeline.sequence_lengths(features)
    valid = [i for i in range(len(indices)) if indices[i] >= 0]
    if width is None:
        width = int(input_pipeline.batch_widths(np.asarray(indices)[None], lengths, max_width,
                                                pad_multiple)[0])
    # First fit, longest first: rows[r] = [slot, ...], fill[r] = tokens used.
    rows, fill = [], []
    for slot in sorted(valid, key=lambda s: -int(lengths[indices[s]])):
        length = int(lengths[indices[slot]])
        for r, used in enumerate(fill):
            if used + length <= width:
                rows[r].append(slot)
                fill[r] += length
                break
        else:
            rows.append([slot])
            fill.append(length)
    if not rows:
        rows = [[]]
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
    unpacked. Rows and widths vary from step to step (no static shapes); every
    replica of a step packs into rows of the global batch's width (its
    longest example, as unpacked batches), so that outputs with a sequence
    axis (span logits) gather across replicas.
    """
    by_replica = input_pipeline.split_by_replica(strategy, index_matrix)
    per_replica = by_replica.shape[2]
    max_width = features["input_mask"].shape[1]
    widths = input_pipeline.batch_widths(index_matrix, input_pipeline.sequence_lengths(features),
                                         max_width, pad_multiple)
    label_array = (np.asarray(labels) if labels is not None
                   else np.zeros(len(features["input_mask"]), np.int64))
    label_spec = tf.TensorSpec((per_replica,) + label_array.shape[1:],
                               tf.as_dtype(label_array.dtype))
    signature = (
        {**{name: tf.TensorSpec((None, None), tf.int32) for name in PACKED_NAMES},
         "cls_positions": tf.TensorSpec((per_replica, 2), tf.int32)},
        label_spec, tf.TensorSpec((per_replica,), tf.float32))

    def dataset_fn(input_context):
        local, local_count = input_pipeline.local_rows(by_replica, input_context)

        def generate():
            for row, width in zip(local, np.repeat(widths, local_count)):
                safe = np.where(row >= 0, row, 0)
                yield (pack_examples(features, row, max_width, pad_multiple, int(width)),
                       label_array[safe], (row >= 0).astype(np.float32))

        return input_pipeline.finish(
            tf.data.Dataset.from_generator(generate, output_signature=signature))

    return input_pipeline.distribute(strategy, dataset_fn)


def packed_train_model(kind, model, encoder, static_shapes=False):
    """The model packed steps call: `kind`'s packed model on `model`'s layers.

    `PackedClassifier` for classification, `PackedSpanModel` for SQuAD
    windows. One per task model (kept while the model lives), so that
    training and evaluation, and the trials of a sweep that share the model,
    share its traced functions.
    """
    if kind.name not in PACKED_MODELS:
        raise ValueError(f"--pack_sequences packs {' and '.join(sorted(PACKED_MODELS))} "
                         f"examples, not the {kind.name} task kind's (drop --pack_sequences)")
    if static_shapes:
        raise ValueError("--pack_sequences needs rows of varying shape: not on TPUs")
    kept = _PACKED.get(id(model))
    if kept is None or kept[0] is not model:
        kept = (model, PACKED_MODELS[kind.name](model, encoder))
        _PACKED[id(model)] = kept
        while len(_PACKED) > _MAX_PACKED:  # The oldest first (a sweep keeps two models).
            del _PACKED[next(iter(_PACKED))]
    return kept[1]


def is_packed(model):
    """True for a model that takes packed rows (`packed_train_model`)."""
    return isinstance(model, PackedTaskModel)


_PACKED = {}
_MAX_PACKED = 2
