"""`PackedClassifier`: a classification task model run on packed rows.

Model code: the layers (and so the weights) are the task model's own; only
the inputs differ. See `training/packing.py` for the layout.
"""

import keras
import tensorflow as tf
from keras import ops


def packed_attention_bias(example_ids):
    """`[rows, 1, width, width]` additive mask: 0 within an example, -1e9 elsewhere.

    `example_ids` int `[rows, width]`: 1, 2, ... for the tokens of each
    example of a row, 0 on padding (which no token sees).
    """
    same = ops.logical_and(
        ops.equal(ops.expand_dims(example_ids, 2), ops.expand_dims(example_ids, 1)),
        ops.expand_dims(ops.greater(example_ids, 0), 1))
    return ops.expand_dims((1.0 - ops.cast(same, "float32")) * -1e9, 1)


class PackedClassifier(keras.Model):
    """BERT's classifier (`heads.build_classifier_model`) on packed rows.

    Several examples share a row; each attends only to itself, has its own
    positions (from 0) and token types, and its logits come from its own
    [CLS] token through the pooler, the head dropout and the classifier.
    With dropout off the logits equal the unpacked model's (up to float
    rounding of reductions over longer rows).

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
        super().__init__(name=kwargs.pop("name", "packed_task_model"), **kwargs)
        # The task model first: `trainable_variables` come in its order.
        self.task_model = task_model
        self.encoder = encoder
        self.head_dropout = task_model.get_layer("head_dropout")
        self.classifier = task_model.get_layer("classifier")

    def call(self, inputs, training=None):
        e = self.encoder
        x = e.embeddings(inputs["input_word_ids"], inputs["input_type_ids"], training=training,
                         input_position_ids=inputs["input_position_ids"])
        bias = packed_attention_bias(inputs["input_example_ids"])
        for layer in e.transformer_layers:
            x = layer(x, attention_bias=bias, training=training)
        first_tokens = tf.gather_nd(x, inputs["cls_positions"])  # [num_examples, hidden]
        pooled = e.pooler(first_tokens)
        return self.classifier(self.head_dropout(pooled, training=training))
