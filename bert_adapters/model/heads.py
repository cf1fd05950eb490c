"""Task heads on the encoder: BERT's classifier and its SQuAD span head.

Model code, not training code: task artifacts, the multi-task bank and the
analysis commands rebuild a task's model from its artifact with
`build_task_model`, without importing the trainer.

Every head is one dense layer named `classifier`, so its weights are
`head/kernel` and `head/bias` in task artifacts whatever the task kind.
"""

import keras

from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.ops.dropout import Dropout

# Task kinds and their artifacts' `kind` field. Artifacts written before
# span extraction existed carry no `kind`: they are classifiers.
CLASSIFICATION = "classification"
SPAN = "span"
KINDS = (CLASSIFICATION, SPAN)

# The span logit of a position that is not one of a window's tokens (padding,
# or past a packed window): exp() of it is 0 in float32, so softmaxes and the
# best-span search see the window's own tokens only.
MASKED_LOGIT = -1e9


def _inputs():
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}


def _dense(units, initializer_range):
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name="classifier")


class ClsPooledOutput(keras.layers.Layer):
    """The encoder's pooled output, its top layer computed at [CLS] only.

    `BertEncoder.cls_pooled_output` as a layer of a functional task model;
    the encoder's weights are its weights.

    Args:
        encoder: the `BertEncoder`.

    Call arguments:
        inputs: the encoder's input dict.
        training: bool.

    Returns:
        `[batch_size, hidden_dim]`.
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, inputs, training=None):
        return self.encoder.cls_pooled_output(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape["input_word_ids"][0], self.encoder.config.hidden_dim)


def build_classifier_model(encoder, num_outputs, head_dropout=0.1, initializer_range=0.02,
                           cls_only_top_layer=False):
    """Encoder -> pooled output -> dropout -> dense with `num_outputs` units.

    As BERT's `run_classifier.py`: dropout 0.1 on the pooled [CLS] vector and
    one dense layer (logits `[batch_size, num_outputs]` for classification,
    one value for regression). `cls_only_top_layer`: the encoder's top layer
    computes its output at [CLS] alone (`ClsPooledOutput`), the only position
    the head reads, drawing the full layer's dropout masks there: the same
    logits and gradients up to float rounding (`run_classifier.py`'s default).
    """
    inputs = _inputs()
    if cls_only_top_layer:
        pooled = ClsPooledOutput(encoder, name="cls_pooled_output")(inputs)
    else:
        pooled = encoder(inputs)["pooled_output"]
    # Keras' masks, drawn per replica as one device draws them (`ops.dropout`).
    x = Dropout(head_dropout, name="head_dropout")(pooled)
    outputs = _dense(num_outputs, initializer_range)(x)
    return keras.Model(inputs, outputs, name="task_model")


def build_span_model(encoder, initializer_range=0.02):
    """Encoder -> sequence output -> dense with 2 units: start and end logits.

    As BERT's `run_squad.py`: no dropout on the sequence output; the output
    is `[batch_size, seq_length, 2]`, `[..., 0]` the start logits and
    `[..., 1]` the end logits of each token.
    """
    inputs = _inputs()
    sequence = encoder(inputs)["sequence_output"]
    outputs = _dense(2, initializer_range)(sequence)
    return keras.Model(inputs, outputs, name="task_model")


def build_task_model(encoder, task_config):
    """The head a task artifact's `task_config` describes, on `encoder`.

    A classifier computes its top layer at [CLS] only, as training does by
    default (the same logits up to float rounding, less work per example).
    """
    kind = task_config.get("kind", CLASSIFICATION)
    if kind == CLASSIFICATION:
        return build_classifier_model(encoder, task_config["num_outputs"],
                                      task_config.get("head_dropout", 0.1),
                                      cls_only_top_layer=True)
    if kind == SPAN:
        return build_span_model(encoder)
    raise ValueError(f"task kind {kind!r} is not one of {KINDS}")


def is_cls_only(model):
    """Whether a task model built here computes its top layer at [CLS] only."""
    return any(isinstance(layer, ClsPooledOutput) for layer in model.layers)


def head_weight_map(model):
    """{`head/kernel`, `head/bias`: variable} of a model built here."""
    head = model.get_layer("classifier")
    return {"head/kernel": head.kernel, "head/bias": head.bias}
