"""BERT's optimiser and learning-rate schedule, as Keras 3 objects.

BERT (google-research/bert `optimization.py`), which the paper uses:
Adam without bias correction, decoupled weight decay 0.01 on every weight
except LayerNorm parameters and biases, global-norm clipping at 1.0, and a
learning rate warmed up linearly over the first steps then decayed linearly
to zero.
"""

import keras
from keras import ops

OPTIMIZERS = ("bert_adam", "adamw")
# LayerNorm (gamma, beta) and biases are not decayed, as in BERT.
NO_DECAY_NAMES = ("bias", "gamma", "beta")
# Keras matches against the backend variable's name, which in TensorFlow may
# carry a scope and a `:0` suffix.
_NO_DECAY_PATTERN = r"(^|/)(%s)(:\d+)?$" % "|".join(NO_DECAY_NAMES)


@keras.saving.register_keras_serializable(package="bert_adapters")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`peak * step / warmup` for `step < warmup`, then linear decay to 0 at `total`.

    Args:
        peak_learning_rate: float.
        num_train_steps: int. The step at which the rate reaches zero.
        num_warmup_steps: int.
    """

    def __init__(self, peak_learning_rate, num_train_steps, num_warmup_steps):
        self.peak_learning_rate = peak_learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        total = float(max(self.num_train_steps, 1))
        warmup = float(self.num_warmup_steps)
        decayed = peak * ops.maximum(0.0, 1.0 - step / total)
        if warmup <= 0:
            return decayed
        # BERT: rate = warmup_fraction * peak while step < warmup.
        return ops.where(step < warmup, peak * step / warmup, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "num_train_steps": self.num_train_steps,
                "num_warmup_steps": self.num_warmup_steps}


class _ReducedGradientsMixin:
    """Lets a training loop all-reduce gradients itself before clipping.

    Keras clips gradients per replica, before its own cross-replica sum; BERT's
    global-norm clipping is meant for the whole batch's gradient. With
    `gradients_reduced_by_caller=True` the caller passes gradients already
    summed over replicas (so clipping sees the true global norm) and Keras
    skips its second all-reduce.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        if self.gradients_reduced_by_caller:
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)


@keras.saving.register_keras_serializable(package="bert_adapters")
class BertAdamWeightDecay(_ReducedGradientsMixin, keras.optimizers.Optimizer):
    """BERT's `AdamWeightDecayOptimizer`: Adam without bias correction.

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        w -= lr * (m / (sqrt(v) + eps) + weight_decay * w)   (no decay on
        LayerNorm and biases)

    Args:
        learning_rate: float or schedule.
        weight_decay: float. Decoupled decay rate (BERT: 0.01).
        beta_1, beta_2, epsilon: Adam's constants (BERT: 0.9, 0.999, 1e-6).
        global_clipnorm: float. BERT clips the global gradient norm at 1.0.
        gradients_reduced_by_caller: bool. See `_ReducedGradientsMixin`.
    """

    def __init__(self, learning_rate=1e-4, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, global_clipnorm=1.0, gradients_reduced_by_caller=False,
                 name="bert_adam_weight_decay", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         global_clipnorm=global_clipnorm, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.gradients_reduced_by_caller = gradients_reduced_by_caller
        self.exclude_from_weight_decay(var_names=[_NO_DECAY_PATTERN])

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        self.assign_sub(variable, lr * m / (ops.sqrt(v) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "gradients_reduced_by_caller": self.gradients_reduced_by_caller})
        return config


@keras.saving.register_keras_serializable(package="bert_adapters")
class AdamW(_ReducedGradientsMixin, keras.optimizers.AdamW):
    """Keras AdamW (with bias correction), BERT's decay exclusions and clipping."""

    def __init__(self, *args, gradients_reduced_by_caller=False, **kwargs):
        kwargs.setdefault("global_clipnorm", 1.0)
        kwargs.setdefault("epsilon", 1e-6)
        super().__init__(*args, **kwargs)
        self.gradients_reduced_by_caller = gradients_reduced_by_caller
        self.exclude_from_weight_decay(var_names=[_NO_DECAY_PATTERN])

    def get_config(self):
        config = super().get_config()
        config["gradients_reduced_by_caller"] = self.gradients_reduced_by_caller
        return config


def create_optimizer(name, learning_rate, num_train_steps, warmup_proportion=0.1,
                     weight_decay=0.01, gradients_reduced_by_caller=False):
    """The optimiser `name` (`bert_adam` or `adamw`) with BERT's schedule."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}: expected one of {OPTIMIZERS}")
    if not 0.0 <= warmup_proportion < 1.0:
        raise ValueError(f"warmup_proportion must be in [0, 1), got {warmup_proportion}")
    schedule = WarmupLinearDecay(learning_rate, num_train_steps,
                                 int(num_train_steps * warmup_proportion))
    cls = BertAdamWeightDecay if name == "bert_adam" else AdamW
    return cls(learning_rate=schedule, weight_decay=weight_decay,
               gradients_reduced_by_caller=gradients_reduced_by_caller)
