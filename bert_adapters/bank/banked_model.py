"""`BankedModel`: one frozen base, N tasks' adapters, LayerNorms and heads, one forward pass."""

import numpy as np
import tensorflow as tf
from keras import ops

from bert_adapters.ops import activations
from bert_adapters.model.adapter import adapter_residual
from bert_adapters.model.bert_encoder import attention_bias


class BankedModel(tf.Module):
    """Mixed-task batches through one copy of a frozen BERT (Houlsby et al., section 1).

    What a task trains (both adapters of every layer, all 2L+1 LayerNorms and
    the classifier head) is stacked over the bank's tasks on a leading task
    axis; each example gathers its own task's slice by its task index, so a
    batch may mix any tasks in one forward pass, with no loop over tasks and
    one copy of the base. The base's layers compute as they do in
    `BertEncoder` (`TransformerLayer.forward`, `BertEmbeddings.sum_embeddings`,
    `adapter_residual`), with the per-example adapters and LayerNorms passed in.

    Tasks with smaller adapters are zero-padded to the widest (a zero
    bottleneck unit adds exactly zero); a `layer_norm`-tuned task has all-zero
    adapters, i.e. none, and a task with adapters in some layers only
    (`--adapter_layers`) has all-zero adapters and the base's LayerNorms in
    the others, as its own model computes them. Heads are padded to the most outputs; the padding's
    logits are -inf. A span task's 2-unit head is stacked with the others
    (padded likewise) and applied to the sequence output by `outputs`, so a
    batch may mix classification rows and span windows.

    Args:
        encoder: the frozen base `BertEncoder` (its own adapters, if any, are
            not used).
        tasks: the `BankTask`s, in task-index order.

    Call arguments:
        inputs: the encoder's input dict, int32 `[batch_size, seq_length]`.
        task_ids: int32 `[batch_size]`, each example's task index.

    Returns:
        float32 logits `[batch_size, num_outputs]` (the bank's widest head);
        outputs a task does not have are -inf.
    """

    def __init__(self, encoder, tasks, name="banked_model"):
        super().__init__(name=name)
        self.encoder = encoder
        self.num_tasks = len(tasks)
        self.adapter_width = max(task.adapter_size for task in tasks)
        self.num_outputs = max(task.num_outputs for task in tasks)
        self._activation_fn = activations.get(encoder.config.activation)
        arrays, valid = stack_task_weights(encoder, tasks, self.adapter_width, self.num_outputs)
        # Checkpoint-friendly keys: "/" would be read as a scope.
        self.task_weights = {name.replace("/", "."): tf.Variable(value, trainable=False,
                                                                   name=name.replace("/", "."))
                             for name, value in arrays.items()}
        self.valid_outputs = tf.constant(valid)

    def __call__(self, inputs, task_ids):
        weights, sequence = self._sequence_output(inputs, task_ids)
        return self._pooled_logits(weights, sequence, task_ids)

    def outputs(self, inputs, task_ids):
        """Both heads' outputs of one forward pass, for batches mixing kinds of task.

        Returns:
            `(logits, span_logits)`: `logits` as `__call__` (each example's
            head on its pooled output); `span_logits` float32 `[batch_size,
            seq_length, 2]`, each example's head on its sequence output,
            `[..., 0]` start and `[..., 1]` end logits (meaningful for the rows
            of span tasks, whose 2-unit head reads every token as
            `heads.build_span_model`).
        """
        weights, sequence = self._sequence_output(inputs, task_ids)
        logits = self._pooled_logits(weights, sequence, task_ids)
        span = _dense(weights["head/kernel"][:, :, :2], weights["head/bias"][:, :2])(sequence)
        return logits, tf.cast(span, tf.float32)

    def _sequence_output(self, inputs, task_ids):
        """(each example's task weights, the sequence output `[B, S, d]`)."""
        enc = self.encoder
        weights = {name.replace(".", "/"): tf.gather(v, task_ids)
                   for name, v in self.task_weights.items()}
        x = enc.embeddings.sum_embeddings(inputs["input_word_ids"], inputs["input_type_ids"])
        x = _layer_norm(enc.embeddings.layer_norm, weights, "embeddings/layer_norm")(x)
        bias = attention_bias(inputs["input_mask"])
        for i, layer in enumerate(enc.transformer_layers):
            p = f"layer_{i}"
            x = layer.forward(
                x, bias, False,
                self._adapter(weights, f"{p}/attention_adapter"),
                _layer_norm(layer.attention_layer_norm, weights, f"{p}/attention_layer_norm"),
                self._adapter(weights, f"{p}/output_adapter"),
                _layer_norm(layer.output_layer_norm, weights, f"{p}/output_layer_norm"))
        return weights, x

    def _pooled_logits(self, weights, x, task_ids):
        pooled = self.encoder.pooler(x[:, 0, :])
        logits = _dense(weights["head/kernel"], weights["head/bias"])(pooled[:, tf.newaxis, :])
        valid = tf.gather(self.valid_outputs, task_ids)
        return tf.where(valid, tf.cast(logits[:, 0, :], tf.float32), float("-inf"))

    def _adapter(self, weights, prefix):
        if not self.adapter_width:
            return None
        down = _dense(weights[f"{prefix}/down/kernel"], weights[f"{prefix}/down/bias"])
        up = _dense(weights[f"{prefix}/up/kernel"], weights[f"{prefix}/up/bias"])
        return lambda h: adapter_residual(h, down, up, self._activation_fn)


def _dense(kernel, bias):
    """Per-example projection: `x [B, S, in] @ kernel [B, in, out] + bias [B, out]`."""
    return lambda x: tf.matmul(x, kernel) + bias[:, tf.newaxis, :]


def _layer_norm(layer, weights, prefix):
    """`layer`'s LayerNorm (its axis, epsilon, dtype) with per-example gamma and beta.

    The computation is Keras' `LayerNormalization.call`, with `[B, 1, d]`
    parameters broadcast over each example's positions.
    """
    gamma = weights[f"{prefix}/gamma"][:, tf.newaxis, :]
    beta = weights[f"{prefix}/beta"][:, tf.newaxis, :]
    return lambda x: ops.cast(
        ops.layer_normalization(x, gamma, beta, layer.axis, layer.epsilon), layer.compute_dtype)


def stack_task_weights(encoder, tasks, adapter_width, num_outputs):
    """The tasks' trained weights on a leading task axis, padded to common shapes.

    A LayerNorm a task did not train keeps the base's value; adapters it did
    not train are zeros (exactly no adapter). Adapters are zero-padded to
    `adapter_width` bottleneck units, heads to `num_outputs` outputs.

    Returns:
        ({canonical name: float32 array `[num_tasks, ...]`}, bool array
        `[num_tasks, num_outputs]` marking each task's real outputs).
    """
    d = encoder.config.hidden_dim
    # {name: (base value or None for zeros, shape as a function of (m, c))}
    slots = {name: (np.asarray(v.numpy(), np.float32), lambda m, c, s=tuple(v.shape): s)
             for name, v in encoder.weight_map().items() if "layer_norm/" in name}
    if adapter_width:
        for i in range(encoder.config.num_layers):
            for slot in ("attention_adapter", "output_adapter"):
                p = f"layer_{i}/{slot}"
                slots[f"{p}/down/kernel"] = (None, lambda m, c: (d, m))
                slots[f"{p}/down/bias"] = (None, lambda m, c: (m,))
                slots[f"{p}/up/kernel"] = (None, lambda m, c: (m, d))
                slots[f"{p}/up/bias"] = (None, lambda m, c: (d,))
    slots["head/kernel"] = (None, lambda m, c: (d, c))
    slots["head/bias"] = (None, lambda m, c: (c,))

    stacked = {}
    for name, (default, shape_of) in slots.items():
        full = np.zeros((len(tasks),) + shape_of(adapter_width, num_outputs), np.float32)
        for t, task in enumerate(tasks):
            value = task.weights.get(name)
            if value is None:
                if name.startswith("head/"):
                    raise ValueError(f"{task.source}: the artifact has no {name}")
                if default is None:
                    continue  # An adapter the task did not train: zeros, no adapter.
                value = default
            expected = shape_of(task.adapter_size, task.num_outputs)
            if tuple(value.shape) != expected:
                raise ValueError(f"{task.source}: {name} has shape {tuple(value.shape)}, "
                                 f"expected {expected} (this base, adapter_size "
                                 f"{task.adapter_size}, {task.num_outputs} outputs)")
            full[(t,) + tuple(slice(0, n) for n in expected)] = value
        stacked[name] = full
    valid = np.zeros((len(tasks), num_outputs), bool)
    for t, task in enumerate(tasks):
        valid[t, :task.num_outputs] = True
    return stacked, valid
