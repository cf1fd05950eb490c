"""The bottleneck adapter module of Houlsby et al. (2019), section 2.1."""

import keras
from keras import ops

from bert_adapters.ops import activations
from bert_adapters.ops.dense import TokenDense


def adapter_residual(inputs, down, up, activation_fn):
    """`inputs + up(act(down(inputs)))`: the adapter's computation.

    `down` and `up` are any projections (callables); `Adapter` passes its
    Dense layers, the multi-task bank per-example ones gathered by task.
    """
    return inputs + up(activation_fn(down(inputs)))


@keras.saving.register_keras_serializable(package="bert_adapters")
class Adapter(keras.layers.Layer):
    """Bottleneck adapter: `x + up(act(down(x)))`.

    The input of dimension d is projected down to `adapter_size` m, passed
    through the encoder's non-linearity and projected back up; the result is
    added to the input. With a near-zero up-projection the module starts as
    (almost) the identity, so inserting it does not disturb the pre-trained
    network at the start of training (paper, section 2.1 and figure 2).

    Parameters: 2md + d + m (two kernels, biases of size m and d). There is
    no dropout and no LayerNorm inside: the paper trains the surrounding
    LayerNorms instead.

    Kernels are drawn from a zero-mean normal truncated at two standard
    deviations with standard deviation `adapter_init_scale`; biases start at
    zero. The paper's main experiments use 1e-2 (section 3.6); the authors'
    released code (google-research/adapter-bert) defaults to 1e-3.

    Args:
        adapter_size: int. Bottleneck dimension m.
        adapter_init_scale: float. Standard deviation of the truncated
            normal initialiser of both kernels.
        activation: str. `"gelu"` (exact, erf) or `"gelu_tanh"` (the tanh
            approximation used by the original BERT).

    Call arguments:
        inputs: float tensor `[batch_size, seq_length, hidden_dim]`.

    Returns:
        A tensor of the same shape.

    Example:
    >>> layer = Adapter(adapter_size=8)
    >>> y = layer(np.zeros((2, 5, 16), "float32"))  # y.shape == (2, 5, 16)
    """

    def __init__(self, adapter_size, adapter_init_scale=1e-2, activation="gelu_tanh", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(adapter_size, int) or adapter_size < 1:
            raise ValueError(f"adapter_size must be a positive integer, got {adapter_size!r}")
        if not adapter_init_scale > 0:
            raise ValueError(f"adapter_init_scale must be positive, got {adapter_init_scale!r}")
        self.adapter_size = adapter_size
        self.adapter_init_scale = adapter_init_scale
        self.activation = activation
        self._activation_fn = activations.get(activation)

    def build(self, input_shape):
        # Sublayers are made here because the up-projection's width is the
        # input's; keras-hub's TransformerEncoder does the same.
        hidden_dim = input_shape[-1]
        initializer = keras.initializers.TruncatedNormal(stddev=self.adapter_init_scale)
        self.down = TokenDense(
            self.adapter_size, kernel_initializer=initializer, dtype=self.dtype_policy, name="down")
        self.down.build(input_shape)
        self.up = TokenDense(
            hidden_dim, kernel_initializer=initializer, dtype=self.dtype_policy, name="up")
        self.up.build(tuple(input_shape[:-1]) + (self.adapter_size,))
        self.built = True

    def call(self, inputs, gate=None):
        """`gate`: None, or a scalar (1.0: the adapter, 0.0: the identity).

        The gate scales the bottleneck activations and the up-projection's
        bias (m + d numbers, not the d-wide output): with 1.0 the products
        are exactly the ungated ones, with 0.0 the adapter adds exact zeros.
        """
        up = self.up
        if gate is not None:
            gate = ops.cast(gate, self.compute_dtype)
            bias = None if self.up.bias is None else self.up.bias * gate
            up = lambda h: self.up.project(h * gate, bias)  # noqa: E731
        return adapter_residual(inputs, self.down, up, self._activation_fn)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "adapter_size": self.adapter_size,
            "adapter_init_scale": self.adapter_init_scale,
            "activation": self.activation,
        })
        return config
