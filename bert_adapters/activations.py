"""The two GELUs BERT checkpoints are trained with.

TF1 BERT, TF Hub, Model Garden and keras-hub use the tanh approximation
(`"gelu_tanh"`); Hugging Face's `hidden_act="gelu"` is the exact erf form
(`"gelu"`). Reproducing a checkpoint exactly needs the right one.
"""

import keras

ACTIVATIONS = ("gelu", "gelu_tanh")


def get(name):
    """Returns the activation function called `name` (one of ACTIVATIONS)."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: keras.activations.gelu(x, approximate=True)
    raise ValueError(f"Unsupported activation {name!r}: expected one of {ACTIVATIONS}")
