"""The classification / regression head on the pooled output (BERT's)."""

import keras

from bert_adapters.bert_encoder import INPUT_NAMES


def build_task_model(encoder, num_outputs, head_dropout=0.1, initializer_range=0.02):
    """Encoder -> pooled output -> dropout -> dense with `num_outputs` units.

    As BERT's `run_classifier.py`: dropout 0.1 on the pooled [CLS] vector and
    one dense layer (logits for classification, one value for regression).
    The head is named `classifier`; its weights are `head/kernel`, `head/bias`
    in task artifacts.
    """
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}
    pooled = encoder(inputs)["pooled_output"]
    x = keras.layers.Dropout(head_dropout, name="head_dropout")(pooled)
    outputs = keras.layers.Dense(
        num_outputs, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name="classifier")(x)
    return keras.Model(inputs, outputs, name="task_model")


def head_weight_map(model):
    """{`head/kernel`, `head/bias`: variable} of a model from build_task_model."""
    head = model.get_layer("classifier")
    return {"head/kernel": head.kernel, "head/bias": head.bias}
