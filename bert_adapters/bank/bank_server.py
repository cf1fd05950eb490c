"""`BankServer`: raw strings in, each task's label strings and scores out; the SavedModel's root."""

import tensorflow as tf

from bert_adapters.bank.bank_task import PAIR, PAIR_IF_GIVEN, SINGLE
from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.tasks.glue_files import STSB_RANGE

_STRINGS = tf.TensorSpec([None], tf.string)


class BankServer(tf.Module):
    """The tokenizer, the `BankedModel` and the tasks' label tables, as one module.

    `serve(task, text_a, text_b)` takes `[batch_size]` string tensors (any
    mix of tasks; names case-insensitive, `sst2` = `SST-2`; `text_b` is
    ignored for single-sentence tasks) and returns
      - `prediction`: `[batch_size]` strings, the label each task's GLUE
        submission file would hold (regression: the score clipped to
        [0, 5], 3 decimals, as STS-B's submission);
      - `scores`: float32 `[batch_size, num_outputs]`, each task's class
        probabilities in the order of its labels (regression: the raw
        score), zero-padded to the bank's widest head;
      - `task`: `[batch_size]` the canonical task names.
    An unknown task name, or a pair task without `text_b`, fails the call
    with InvalidArgument naming it; so does a span (SQuAD) task: the
    SavedModel does not answer span tasks (their windows, best-span search
    and offsets back into the original text run in Python: `TaskBank.predict`,
    `bank predict`), and it has no signature for them. Batches are padded to their longest
    example, not to `max_seq_length`. Saved by `tf.saved_model.save` with
    `signatures(serve_function())`, this module is the bank's SavedModel:
    plain TensorFlow and tensorflow_text ops, nothing of `bert_adapters`
    needed to load or run it.

    Args:
        model: a `BankedModel`.
        tokenizer: the base's `BertTokenizer`.
        tasks: the `BankTask`s, in the model's task-index order.
    """

    def __init__(self, model, tokenizer, tasks, name="bank"):
        super().__init__(name=name)
        self.model = model
        self.tokenizer = tokenizer
        self.task_names = [task.name for task in tasks]
        width = model.num_outputs
        self._names = tf.constant(self.task_names)
        self._task_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([task.key for task in tasks]), tf.range(len(tasks), dtype=tf.int32)),
            default_value=-1)
        labels = [list(task.labels or ()) for task in tasks]
        self._labels = tf.constant([row + [""] * (width - len(row)) for row in labels])
        self._text_modes = tf.constant([task.text_mode for task in tasks], tf.int32)
        self._regression = tf.constant([task.is_regression for task in tasks])
        self._span = tf.constant([task.is_span for task in tasks])
        self.span_task_names = [task.name for task in tasks if task.is_span]

    def serve_function(self):
        """`serve` as a `tf.function` over `[batch_size]` string tensors.

        Kept off the module (a plain method): a `tf.function` attribute
        would be traced and stored a second time by `tf.saved_model.save`.
        """
        return tf.function(self.serve, input_signature=[_STRINGS] * 3)

    def serve(self, task, text_a, text_b):
        """Raw strings of any mix of tasks -> `prediction`, `scores`, `task` (see above)."""
        task_ids = self._refuse_span(task, self._lookup(task))
        inputs = cut_to_longest(self.encode(task_ids, text_a, text_b))
        return self.classify(task_ids, self.model(inputs, task_ids))

    def classify(self, task_ids, logits):
        """Pooled-output logits -> `prediction`, `scores`, `task` of classification rows."""
        regression = tf.gather(self._regression, task_ids)
        raw = tf.where(tf.math.is_finite(logits), logits, 0.0)
        scores = tf.where(regression[:, tf.newaxis], raw, tf.nn.softmax(logits))
        best = tf.argmax(logits, axis=-1, output_type=tf.int32)
        labels = tf.gather_nd(self._labels, tf.stack([task_ids, best], axis=1))
        low, high = STSB_RANGE
        value = tf.strings.as_string(tf.clip_by_value(raw[:, 0], low, high), precision=3)
        return {"prediction": tf.where(regression, value, labels), "scores": scores,
                "task": tf.gather(self._names, task_ids)}

    def _refuse_span(self, task, task_ids):
        if not self.span_task_names:
            return task_ids
        span = tf.gather(self._span, task_ids)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(span)),
            ["span (SQuAD) task(s) are not answered by this SavedModel:",
             tf.boolean_mask(task, span), "ask the Python bank (TaskBank.predict or "
             "`python -m bert_adapters.bank predict`) for their answers"], summarize=5)
        with tf.control_dependencies([check]):
            return tf.identity(task_ids)

    def _lookup(self, task):
        """Task indices of the names, case, dashes and underscores ignored."""
        keys = tf.strings.regex_replace(tf.strings.lower(task, encoding="utf-8"),
                                        r"[^\pL\pN]", "")
        task_ids = self._task_index.lookup(keys)
        unknown = task_ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            ["unknown task name(s):", tf.boolean_mask(task, unknown), "this bank serves:",
             ", ".join(self.task_names)], summarize=5)
        with tf.control_dependencies([check]):  # Before anything gathers with -1.
            return tf.identity(task_ids)

    def encode(self, task_ids, text_a, text_b):
        """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` as each example's task takes it.

        Padded to `max_seq_length` (`cut_to_longest` trims a batch).
        """
        modes = tf.gather(self._text_modes, task_ids)
        given = tf.strings.length(text_b) > 0
        missing = (modes == PAIR) & ~given
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(missing)),
            ["text_b is empty for a pair task:", tf.boolean_mask(tf.gather(self._names, task_ids),
                                                                 missing)], summarize=5)
        with tf.control_dependencies([check]):
            pair = (modes == PAIR) | ((modes == PAIR_IF_GIVEN) & given)  # Else SINGLE.
        single_inputs = self.tokenizer(text_a)
        pair_inputs = self.tokenizer(text_a, text_b)
        return {name: tf.where(pair[:, tf.newaxis], pair_inputs[name], single_inputs[name])
                for name in INPUT_NAMES}

    def task_signature(self, serve, index):
        """A `tf.function` serving one task through `serve` (a `serve_function()`).

        It takes `text_a` only for single-sentence tasks, else `text_a` and `text_b`.
        """
        name = self.task_names[index]

        def fill(texts):
            return tf.fill(tf.shape(texts), name)

        if int(self._text_modes[index]) == SINGLE:
            return tf.function(lambda text_a: serve(fill(text_a), text_a, tf.zeros_like(text_a)),
                               input_signature=[_STRINGS])
        return tf.function(lambda text_a, text_b: serve(fill(text_a), text_a, text_b),
                           input_signature=[_STRINGS] * 2)

    def signatures(self, serve):
        """{signature key: concrete function}: `serving_default` and one per task name.

        Span tasks get none (see the class docstring).

        `serve` is a `serve_function()`, traced once for all of them.
        """
        signatures = {"serving_default": serve.get_concrete_function()}
        for index, name in enumerate(self.task_names):
            if name not in self.span_task_names:
                signatures[name] = self.task_signature(serve, index).get_concrete_function()
        return signatures


def cut_to_longest(inputs, min_width=1):
    """The batch's input dict cut to its longest example (at least `min_width`).

    Padding costs compute and changes nothing else: keys on padding are masked.
    """
    width = tf.maximum(tf.reduce_max(tf.reduce_sum(inputs["input_mask"], axis=1)), min_width)
    return {name: value[:, :width] for name, value in inputs.items()}
