"""One post-LayerNorm BERT layer with the paper's two adapter slots."""

import keras
import tensorflow as tf
from keras import ops

from bert_adapters.ops import activations
from bert_adapters.model.adapter import Adapter
from bert_adapters.ops.dense import TokenDense
from bert_adapters.ops.dropout import Dropout
from bert_adapters.ops.layer_norm import LayerNorm
from bert_adapters.model.self_attention import SelfAttention


@keras.saving.register_keras_serializable(package="bert_adapters")
class TransformerLayer(keras.layers.Layer):
    """A BERT Transformer layer with optional bottleneck adapters.

    Post-LayerNorm, as BERT:
        a = dropout(attention(x));  a = adapter_1(a);  x = LN(x + a)
        h = dropout(W_2 act(W_1 x)); h = adapter_2(h);  x = LN(x + h)
    The adapters sit where figure 2 of Houlsby et al. (2019) puts them: after
    each sub-layer's output projection and its dropout, before the residual
    add and the LayerNorm. `adapters_enabled = False` bypasses both (the
    paper's layer ablation, section 3.6), without touching their weights:
    it sets `adapter_gate`, a variable that traced functions read at run
    time, so switching needs no re-trace.

    `queries` computes the layer's output at some positions only, over the
    keys and values of every position (Model Garden's `output_range`): a
    classifier reads the top layer at [CLS] alone.

    Args:
        num_heads: int. Attention heads.
        intermediate_dim: int. Width of the feed-forward network.
        activation: str. `"gelu"` or `"gelu_tanh"`.
        dropout: float. Dropout on each sub-layer's output.
        attention_dropout: float. Dropout on the attention probabilities.
        layer_norm_epsilon: float.
        adapter_size: int or None. None builds no adapters.
        adapter_init_scale: float. See `Adapter`.
        kernel_initializer: initializer of the dense kernels.
        stop_input_gradient: bool. No gradient flows back through the
            inputs: every weight below is frozen (the lowest adapted layer
            of `BertEncoder(adapter_layers=...)`), so the layers below keep
            no activations for a backward pass.

    Call arguments:
        inputs: `[batch_size, seq_length, hidden_dim]`.
        attention_bias: additive mask, see `SelfAttention` (with `queries`,
            broadcastable to `[query_batch, heads, num_queries, seq_length]`).
        training: bool.
        queries: optional `[query_batch, num_queries, hidden_dim]`, the inputs
            at the positions whose outputs are wanted; default `inputs`.
            Without `rows` they are `inputs[:, :num_queries]`, and every
            dropout mask is the full computation's at those positions: the
            same step, up to float rounding.
        rows: optional int `[query_batch]`, the row of `inputs` each query
            row attends over; default the same row.

    Returns:
        `[query_batch, num_queries, hidden_dim]`: by default `inputs`' shape.
    """

    def __init__(self, num_heads, intermediate_dim, activation="gelu_tanh", dropout=0.1,
                 attention_dropout=0.1, layer_norm_epsilon=1e-12, adapter_size=None,
                 adapter_init_scale=1e-2, kernel_initializer="glorot_uniform",
                 stop_input_gradient=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.adapter_size = adapter_size
        self.adapter_init_scale = adapter_init_scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.stop_input_gradient = stop_input_gradient
        self._activation_fn = activations.get(activation)
        # 1.0: adapters on, 0.0: bypassed (made in build when there are
        # adapters). A variable rather than a Python flag, so that one traced
        # function serves every setting (the ablation evaluates L(L+1)/2).
        self.adapter_gate = None

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        policy = self.dtype_policy
        # A fresh initializer per kernel, so that no two kernels share values.
        init = lambda: keras.initializers.deserialize(
            keras.initializers.serialize(self.kernel_initializer))
        self.attention = SelfAttention(
            self.num_heads, self.attention_dropout, kernel_initializer=init(),
            dtype=policy, name="attention")
        self.attention.build(input_shape)
        self.attention_output_dropout = Dropout(
            self.dropout, dtype=policy, name="attention_output_dropout")
        self.attention_layer_norm = LayerNorm(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="attention_layer_norm")
        self.attention_layer_norm.build(input_shape)
        self.intermediate = TokenDense(
            self.intermediate_dim, kernel_initializer=init(), dtype=policy, name="intermediate")
        self.intermediate.build(input_shape)
        self.output_dense = TokenDense(
            hidden_dim, kernel_initializer=init(), dtype=policy, name="output")
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.output_dropout = Dropout(self.dropout, dtype=policy, name="output_dropout")
        self.output_layer_norm = LayerNorm(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="output_layer_norm")
        self.output_layer_norm.build(input_shape)
        self.attention_adapter = self.output_adapter = None
        if self.adapter_size:
            self.attention_adapter = Adapter(
                self.adapter_size, self.adapter_init_scale, self.activation,
                dtype=policy, name="attention_adapter")
            self.attention_adapter.build(input_shape)
            self.output_adapter = Adapter(
                self.adapter_size, self.adapter_init_scale, self.activation,
                dtype=policy, name="output_adapter")
            self.output_adapter.build(input_shape)
            # A raw tf.Variable, not a Keras weight: a switch, not a parameter,
            # it stays out of `weights`, weight maps, artifacts and counts.
            self.adapter_gate = tf.Variable(1.0, trainable=False, name="adapter_gate")
        self.built = True

    @property
    def adapters_enabled(self):
        return self.adapter_gate is not None and bool(self.adapter_gate.numpy() > 0.5)

    @adapters_enabled.setter
    def adapters_enabled(self, enabled):
        if self.adapter_gate is None:
            raise ValueError(f"{self.name} has no adapters to switch (adapter_size=None, or "
                             f"not built yet)")
        self.adapter_gate.assign(1.0 if enabled else 0.0)

    def _gated(self, adapter, inputs):
        # Exact in both settings (see `Adapter.call`), and cheaper than a
        # select over the d-wide output.
        return adapter(inputs, gate=self.adapter_gate)

    def call(self, inputs, attention_bias=None, training=None, queries=None, rows=None):
        attention_adapter = output_adapter = None
        if self.adapter_size:
            attention_adapter = lambda a: self._gated(self.attention_adapter, a)
            output_adapter = lambda h: self._gated(self.output_adapter, h)
        return self.forward(inputs, attention_bias, training, attention_adapter,
                            self.attention_layer_norm, output_adapter, self.output_layer_norm,
                            queries=queries, rows=rows)

    def forward(self, inputs, attention_bias, training, attention_adapter, attention_layer_norm,
                output_adapter, output_layer_norm, queries=None, rows=None):
        """The layer with its adapters and LayerNorms given as callables.

        `call` passes this layer's own; the multi-task bank passes ones that
        apply each example's task's weights. An adapter of `None` is skipped.
        """
        if self.stop_input_gradient:
            inputs = ops.stop_gradient(inputs)
            queries = None if queries is None else ops.stop_gradient(queries)
        x = inputs if queries is None else queries
        # Leading queries of each row: the full computation's masks at them.
        full_length = ops.shape(inputs)[1] if queries is not None and rows is None else None
        a = self.attention(inputs, attention_bias=attention_bias, training=training,
                           queries=queries, rows=rows)
        a = self.attention_output_dropout(a, training=training, full_length=full_length)
        if attention_adapter is not None:
            a = attention_adapter(a)
        x = attention_layer_norm(x + a)
        h = self._activation_fn(self.intermediate(x))
        h = self.output_dense(h)
        h = self.output_dropout(h, training=training, full_length=full_length)
        if output_adapter is not None:
            h = output_adapter(h)
        return output_layer_norm(x + h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "adapter_size": self.adapter_size,
            "adapter_init_scale": self.adapter_init_scale,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "stop_input_gradient": self.stop_input_gradient,
        })
        return config
