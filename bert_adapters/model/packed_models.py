"""Task models run on packed rows: `PackedClassifier` and `PackedSpanModel`.

Model code: the layers (and so the weights) are the task model's own; only
the inputs differ. See `training/packing.py` for the layout. Both run the
encoder the same way (`encode_packed_rows`) and differ only in the head.

(The module keeps its first class's name: benchmarks import it by that name.)
"""

import keras
import tensorflow as tf
from keras import ops

from bert_adapters.model import heads


def packed_attention_bias(example_ids):
    """`[rows, 1, width, width]` additive mask: 0 within an example, -1e9 elsewhere.

    `example_ids` int `[rows, width]`: 1, 2, ... for the tokens of each
    example of a row, 0 on padding (which no token sees).
    """
    same = ops.logical_and(
        ops.equal(ops.expand_dims(example_ids, 2), ops.expand_dims(example_ids, 1)),
        ops.expand_dims(ops.greater(example_ids, 0), 1))
    return ops.expand_dims((1.0 - ops.cast(same, "float32")) * -1e9, 1)


def encode_packed_rows(encoder, inputs, training=None, cls_only_top_layer=False):
    """The encoder's sequence output on packed rows, `[rows, width, hidden_dim]`.

    Each example attends only to itself (`packed_attention_bias`) and has its
    own positions (`input_position_ids`, from 0) and token types. With
    `cls_only_top_layer` the top layer runs at each example's [CLS]
    (`cls_positions`) only, over its own row: `[num_examples, hidden_dim]`.
    """
    x = encoder.embeddings(inputs["input_word_ids"], inputs["input_type_ids"],
                           training=training, input_position_ids=inputs["input_position_ids"])
    bias = packed_attention_bias(inputs["input_example_ids"])
    layers = encoder.transformer_layers[:-1] if cls_only_top_layer else encoder.transformer_layers
    for layer in layers:
        x = layer(x, attention_bias=bias, training=training)
    if not cls_only_top_layer:
        return x
    cls_positions = inputs["cls_positions"]
    queries = tf.gather_nd(x, cls_positions)[:, None, :]         # [num_examples, 1, hidden]
    # Each [CLS]'s row of the mask: the keys of its own example.
    own_bias = tf.gather_nd(bias[:, 0], cls_positions)[:, None, None, :]
    x = encoder.transformer_layers[-1](x, attention_bias=own_bias, training=training,
                                       queries=queries, rows=cls_positions[:, 0])
    return x[:, 0, :]


class PackedTaskModel(keras.Model):
    """A task model's encoder and head on packed rows (the subclasses' shared part).

    Args:
        task_model: the task model built by `heads` (its encoder and its
            `classifier` layer are used, weights shared).
        encoder: its `BertEncoder`.
    """

    def __init__(self, task_model, encoder, **kwargs):
        super().__init__(name=kwargs.pop("name", "packed_task_model"), **kwargs)
        # The task model first: `trainable_variables` come in its order.
        self.task_model = task_model
        self.encoder = encoder
        self.classifier = task_model.get_layer("classifier")


class PackedClassifier(PackedTaskModel):
    """BERT's classifier (`heads.build_classifier_model`) on packed rows.

    Several examples share a row; each attends only to itself, has its own
    positions (from 0) and token types, and its logits come from its own
    [CLS] token through the pooler, the head dropout and the classifier.
    With dropout off the logits equal the unpacked model's (up to float
    rounding of reductions over longer rows). A task model built with
    `cls_only_top_layer` runs its top layer at the [CLS] tokens only here too;
    its dropout masks there are drawn for the `[num_examples, 1, ...]` tensors
    (packing changes every mask anyway: rows of other shapes).

    Args:
        task_model: the classification model (its encoder and the layers
            `head_dropout` and `classifier` are used, weights shared).
        encoder: its `BertEncoder`.

    Call arguments:
        inputs: dict of int32 `[rows, width]` `input_word_ids`, `input_mask`,
            `input_type_ids`, `input_position_ids`, `input_example_ids`, and
            `cls_positions` int32 `[num_examples, 2]` (row, column).
        training: bool.

    Returns:
        Logits `[num_examples, num_outputs]`, in `cls_positions` order.
    """

    def __init__(self, task_model, encoder, **kwargs):
        super().__init__(task_model, encoder, **kwargs)
        self.head_dropout = task_model.get_layer("head_dropout")
        self.cls_only_top_layer = heads.is_cls_only(task_model)

    def call(self, inputs, training=None):
        if self.cls_only_top_layer:
            first_tokens = encode_packed_rows(self.encoder, inputs, training,
                                              cls_only_top_layer=True)
        else:
            x = encode_packed_rows(self.encoder, inputs, training)
            first_tokens = tf.gather_nd(x, inputs["cls_positions"])  # [num_examples, hidden]
        pooled = self.encoder.pooler(first_tokens)
        return self.classifier(self.head_dropout(pooled, training=training))


class PackedSpanModel(PackedTaskModel):
    """BERT's SQuAD span head (`heads.build_span_model`) on packed windows.

    The span head (the dense layer `classifier`, 2 units) runs on every token
    of the packed rows; each window's logits are then cut out of its row and
    laid from column 0, so that start/end labels (positions in the window)
    apply unchanged. Positions past a window's tokens get `heads.MASKED_LOGIT`:
    the softmax of the loss is over the window's own tokens. (Unpacked, BERT's
    softmax also covers the padding positions; packed rows have none. With
    dropout off the logits at a window's tokens equal the unpacked model's.)

    Args:
        task_model: the span model (its encoder and `classifier` layer are
            used, weights shared).
        encoder: its `BertEncoder`.

    Call arguments:
        inputs: as `PackedClassifier`'s; `cls_positions` (row, column) of
            each window's first token ([CLS]).
        training: bool.

    Returns:
        float32 logits `[num_examples, width, 2]` (width: the rows'),
        `[..., 0]` start and `[..., 1]` end, in `cls_positions` order.
    """

    def call(self, inputs, training=None):
        x = encode_packed_rows(self.encoder, inputs, training)
        # float32 before masking: -1e9 overflows float16 (--mixed_precision=fp16).
        row_logits = tf.cast(self.classifier(x), tf.float32)   # [rows, width, 2]
        example_ids = inputs["input_example_ids"]
        width = tf.shape(example_ids)[1]
        rows, starts = inputs["cls_positions"][:, 0], inputs["cls_positions"][:, 1]
        # Each window's length: the tokens of its row carrying its example id.
        own_id = tf.gather_nd(example_ids, inputs["cls_positions"])   # [num_examples]
        lengths = tf.reduce_sum(tf.cast(
            tf.equal(tf.gather(example_ids, rows), own_id[:, None]), tf.int32), axis=1)
        positions = tf.range(width)[None, :]                           # [1, width]
        columns = tf.minimum(starts[:, None] + positions, width - 1)   # [num_examples, width]
        index = tf.stack([tf.broadcast_to(rows[:, None], tf.shape(columns)), columns], -1)
        logits = tf.gather_nd(row_logits, index)                      # [num_examples, width, 2]
        inside = (positions < lengths[:, None])[:, :, None]
        return tf.where(inside, logits, tf.constant(heads.MASKED_LOGIT, tf.float32))


# The packed model of each task kind.
PACKED_MODELS = {heads.CLASSIFICATION: PackedClassifier, heads.SPAN: PackedSpanModel}
