"""`TokenDense`: a Dense layer applied to every token as one 2-D matmul.

Keras' `Dense` on a `[batch, seq, in]` input computes reshape, matmul,
reshape, then adds the bias to the 3-D result: the reshape between the
matmul and the bias add keeps TensorFlow's Grappler remapper from fusing
them into oneDNN's `_FusedMatMul` (matmul + bias in one pass over the
output). `TokenDense` flattens the tokens first, so matmul and bias add are
adjacent and fuse, then restores the leading axes. Same weights, names and
config as `Dense`; values equal to Dense's up to float rounding (the same
products, summed by a 2-D instead of a reshaped kernel).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert_adapters")
class TokenDense(keras.layers.Dense):
    """`keras.layers.Dense` whose matmul and bias add fuse on inputs of rank > 2."""

    def call(self, inputs, training=None):
        if (len(inputs.shape) <= 2 or getattr(self, "lora_enabled", False)
                or getattr(self, "quantization_mode", None)):
            return super().call(inputs, training=training)
        x = self.project(inputs, self.bias)
        return x if self.activation is None else self.activation(x)

    def project(self, inputs, bias):
        """`inputs @ kernel + bias` over the last axis, as one fusable 2-D matmul.

        `bias` is this layer's own or any tensor of shape `[units]` (None:
        no bias); `Adapter` passes a gated one.
        """
        return token_matmul(inputs, self.kernel, bias)


def token_matmul(inputs, kernel, bias=None):
    """`inputs @ kernel (+ bias)` for `[..., in]` inputs, as one 2-D matmul.

    The tokens are flattened first, so that the matmul and the bias add are
    adjacent in the graph and fuse (oneDNN's `_FusedMatMul`).
    """
    leading = ops.shape(inputs)[:-1]
    x = ops.matmul(ops.reshape(inputs, (-1, inputs.shape[-1])), kernel)
    if bias is not None:
        x = ops.add(x, bias)
    return ops.reshape(x, tuple(leading) + (kernel.shape[-1],))
