import numpy as np
import pytest
import keras

from bert_adapters.training.optimization import (BertAdamWeightDecay, WarmupLinearDecay,
                                                  create_optimizer)


def test_schedule_warmup_then_linear_decay_to_zero():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=100, num_warmup_steps=10)
    values = [float(schedule(s)) for s in (0, 5, 10, 55, 100, 120)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0], rtol=1e-6, atol=1e-9)


def _reference_bert_adam(w, grads, lr, wd, decay, b1=0.9, b2=0.999, eps=1e-6, clip=1.0):
    # BERT's AdamWeightDecayOptimizer after tf.clip_by_global_norm, in NumPy.
    m = np.zeros_like(w); v = np.zeros_like(w)
    for g in grads:
        norm = np.sqrt(np.sum(g * g))
        g = g * clip / max(norm, clip)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        update = m / (np.sqrt(v) + eps)
        if decay:
            update = update + wd * w
        w = w - lr * update
    return w


@pytest.mark.parametrize("name,decay", [("kernel", True), ("bias", False), ("gamma", False)])
def test_bert_adam_matches_reference(name, decay):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5).astype("float32")
    grads = [rng.standard_normal(5).astype("float32") * s for s in (0.1, 3.0, 0.5)]
    variable = keras.Variable(w0, name=name)
    opt = BertAdamWeightDecay(learning_rate=0.01, weight_decay=0.1)
    for g in grads:
        opt.apply_gradients([(g, variable)])
    expected = _reference_bert_adam(w0.astype("float64"), [g.astype("float64") for g in grads],
                                    0.01, 0.1, decay)
    np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-5, atol=1e-6)


def test_create_optimizer_rejects_unknown():
    with pytest.raises(ValueError, match="sgd"):
        create_optimizer("sgd", 1e-3, 10)
    assert create_optimizer("adamw", 1e-3, 10).global_clipnorm == 1.0
