"""`BankServer`: raw strings in, each row's label or answer out; the bank's SavedModel root.

Answering requests is this module's job, building and exporting a bank is
`bank_builder`'s and `bank_export`'s: the SavedModel must answer every task
kind with TensorFlow and tensorflow_text ops alone, since a TF Serving user has
no Python beside the model. A request batch may mix classification rows and
span (SQuAD) rows; the span rows' contexts are cut into windows inside the
graph (`span_windows`, offsets from `span_tokens`), the classification rows
and all windows run through the shared base in one forward pass, and each
question's best span is searched over its windows (`span_search`). A row the
bank cannot answer gets an `error` string; the other rows of its batch are
answered all the same.
"""

import tensorflow as tf

from bert_adapters.bank.bank_task import PAIR, PAIR_IF_GIVEN, SINGLE
from bert_adapters.bank.span_search import best_spans
from bert_adapters.bank.span_tokens import WHITESPACE, tokenize_with_char_offsets
from bert_adapters.bank.span_windows import span_windows
from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.tasks.glue_files import STSB_RANGE

_STRINGS = tf.TensorSpec([None], tf.string)
# Per span task, in this order (gathered by task index).
SPAN_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size",
                 "max_answer_length")


class BankServer(tf.Module):
    """The tokenizer, the `BankedModel` and the tasks' tables, as one module.

    `serve(task, text_a, text_b)` takes `[batch_size]` string tensors, any mix
    of tasks (names case-insensitive, `sst2` = `SST-2`). A classification row
    takes `text_a` (and `text_b` for pair tasks; ignored for single-sentence
    ones); a span row takes `text_a` = the question, `text_b` = the context.
    It returns, per row:
      - `prediction`: string, the label the task's GLUE submission file would
        hold (regression: the score clipped to [0, 5], 3 decimals, as
        STS-B's); for a span task the answer text, cut from the context as
        given ("" when no span qualifies, as `predictions.json`);
      - `scores`: float32 `[batch_size, num_outputs]`, the class probabilities
        in the order of the task's labels (regression: the raw score; span:
        the answer's n-best probability, 0 without an answer), zero-padded to
        the bank's widest head;
      - `answer_start`, `answer_end`: int32, the answer's characters in the
        context (`context[start:end]` in code points); -1 on other rows;
      - `task`: the canonical task name (as given when unknown);
      - `error`: "" or what is wrong with the row: an unknown task, text that
        is not UTF-8, a pair task without `text_b`, an empty question or
        context, a context without word pieces. Such a row's prediction is
        "" and its scores 0.
    Classification rows and span windows are padded to the batch's longest
    row, not to a fixed length (a window holds at most its task's
    `max_seq_length` tokens, as its run cut them). Saved by `tf.saved_model.save` with
    `signatures(serve_function())`, this module is the bank's SavedModel.

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
        self.span_task_names = [task.name for task in tasks if task.is_span]
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
        self._span_settings = tf.constant(
            [[task.max_seq_length if field == "max_seq_length" else task.span_setting(field)
              for field in SPAN_SETTINGS] if task.is_span else [0] * len(SPAN_SETTINGS)
             for task in tasks], tf.int32)
        self._max_n_best = max([task.span_setting("n_best_size") for task in tasks
                                if task.is_span] or [1])

    def serve_function(self):
        """`serve` as a `tf.function` over `[batch_size]` string tensors.

        Kept off the module (a plain method): a `tf.function` attribute
        would be traced and stored a second time by `tf.saved_model.save`.
        """
        return tf.function(self.serve, input_signature=[_STRINGS] * 3)

    def serve(self, task, text_a, text_b):
        """Raw strings of any mix of tasks -> the outputs listed in the class docstring."""
        task_ids, known, error = self._check_rows(task, text_a, text_b)
        named = tf.where(known, tf.gather(self._names, task_ids), task)
        ok, span = tf.equal(error, ""), tf.gather(self._span, task_ids)
        # Only the rows without an error are computed.
        rows = {"classified": tf.where(ok & ~span)[:, 0], "span": tf.where(ok & span)[:, 0]}
        ids = {kind: tf.gather(task_ids, r) for kind, r in rows.items()}
        texts = {kind: (tf.gather(text_a, r), tf.gather(text_b, r)) for kind, r in rows.items()}
        inputs = cut_to_longest(self.encode(ids["classified"], *texts["classified"]))
        size = tf.size(task)
        if not self.span_task_names:
            out = self.classify(ids["classified"], self.model(inputs, ids["classified"]))
            return self._assemble(size, rows, out, None, named, error)
        questions, contexts = texts["span"]
        windows, pieces = self._windows(ids["span"], questions, contexts)
        num_classified = tf.size(rows["classified"])
        # One forward pass: classification rows and every question's windows.
        logits, span_logits = self.model.outputs(
            _concat_rows(inputs, windows.inputs),
            tf.concat([ids["classified"], tf.gather(ids["span"], windows.example)], 0))
        out = self.classify(ids["classified"], logits[:num_classified])
        answers = self._answers(span_logits[num_classified:], windows, pieces, ids["span"],
                                contexts)
        no_pieces = tf.equal(pieces[0].row_lengths(), 0)
        error = _scatter(size, rows["span"], tf.where(no_pieces, _span_error(
            tf.gather(self._names, ids["span"]), "the context (text_b) has no word pieces "
            "(only spaces, control or format characters)"), ""), error)
        return self._assemble(size, rows, out, answers, named, error)

    def _check_rows(self, task, text_a, text_b):
        """(task indices, 0 for unknown tasks; whether known; each row's error or "")."""
        utf8 = [_is_utf8(t) for t in (task, text_a, text_b)]
        # Text that is not UTF-8 would fail the string ops of the whole batch.
        task, text_a, text_b = (tf.where(ok, t, "") for ok, t in zip(utf8, (task, text_a, text_b)))
        looked_up = self._task_index.lookup(_keys(task))
        known = looked_up >= 0
        task_ids = tf.maximum(looked_up, 0)   # Safe to gather with; the row carries an error.
        names = tf.gather(self._names, task_ids)
        span = tf.gather(self._span, task_ids)
        blank_a, blank_b = (tf.strings.regex_full_match(t, f"{WHITESPACE}*")
                            for t in (text_a, text_b))
        checks = [  # The first that applies names the row's error.
            (~utf8[0], "task is not valid UTF-8"),
            (~known, tf.strings.join(["unknown task '", task, "'; this bank serves "
                                      f"{', '.join(self.task_names)}"])),
            (~utf8[1], "text_a is not valid UTF-8"),
            (~utf8[2], "text_b is not valid UTF-8"),
            (span & blank_a, _span_error(names, "the question (text_a) is empty")),
            (span & blank_b, _span_error(names, "the context (text_b) is empty")),
            (~span & (tf.gather(self._text_modes, task_ids) == PAIR)
             & tf.equal(tf.strings.length(text_b), 0),
             tf.strings.join(["text_b is empty: task ", names,
                              " takes a pair of texts (text_a and text_b)"]))]
        error = tf.fill(tf.shape(task), "")
        for failed, message in reversed(checks):
            error = tf.where(failed, message, error)
        return task_ids, known, error

    def encode(self, task_ids, text_a, text_b):
        """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` as each example's task takes it.

        Padded to `max_seq_length` (`cut_to_longest` trims a batch). A pair
        task's row without `text_b` is refused before (`_check_rows`).
        """
        modes = tf.gather(self._text_modes, task_ids)
        given = tf.strings.length(text_b) > 0
        pair = (modes == PAIR) | ((modes == PAIR_IF_GIVEN) & given)  # Else SINGLE.
        single_inputs = self.tokenizer(text_a)
        pair_inputs = self.tokenizer(text_a, text_b)
        return {name: tf.where(pair[:, tf.newaxis], pair_inputs[name], single_inputs[name])
                for name in INPUT_NAMES}

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

    def _windows(self, task_ids, questions, contexts):
        """(`SpanWindows` of the span rows, their contexts' (ids, char starts, char ends))."""
        settings = tf.gather(self._span_settings, task_ids)
        pieces = tokenize_with_char_offsets(self.tokenizer, contexts)
        windows = span_windows(self.tokenizer.tokenize(questions), pieces[0], settings[:, 0],
                               settings[:, 1], settings[:, 2], self.tokenizer.cls_id,
                               self.tokenizer.sep_id)
        return windows, pieces

    def _answers(self, span_logits, windows, pieces, task_ids, contexts):
        """`SpanAnswers` of the span rows from their windows' `[windows, width, 2]` logits."""
        mask = windows.inputs["input_mask"]
        span_logits = span_logits[:, :tf.shape(mask)[1]]
        start, end = (tf.where(mask > 0, span_logits[:, :, i], MASKED_LOGIT) for i in (0, 1))
        settings = tf.gather(self._span_settings, task_ids)
        return best_spans(start, end, windows, (settings[:, 3], settings[:, 4]), contexts,
                          pieces[1], pieces[2], self._max_n_best)

    def _assemble(self, size, rows, out, answers, named, error):
        """Every row's outputs, in request order."""
        width = self.model.num_outputs
        prediction = _scatter(size, rows["classified"], out["prediction"], "")
        scores = _scatter(size, rows["classified"], out["scores"], tf.zeros([width]))
        start = end = tf.fill([size], -1)
        if answers is not None:
            prediction = _scatter(size, rows["span"], answers.text, prediction)
            span_scores = tf.pad(answers.score[:, tf.newaxis], [[0, 0], [0, width - 1]])
            scores = _scatter(size, rows["span"], span_scores, scores)
            start = _scatter(size, rows["span"], answers.char_start, start)
            end = _scatter(size, rows["span"], answers.char_end, end)
        failed = error != ""
        return {"prediction": tf.where(failed, "", prediction),
                "scores": tf.where(failed[:, tf.newaxis], 0.0, scores),
                "answer_start": tf.where(failed, -1, start),
                "answer_end": tf.where(failed, -1, end),
                "task": named, "error": error}

    def task_signature(self, serve, index):
        """A `tf.function` serving one task through `serve` (a `serve_function()`).

        A classification task takes `text_a` (and `text_b` for pair tasks) and
        returns `prediction`, `scores`, `task`, `error`; a span task takes `question`
        and `context` and returns `answer`, `score`, `answer_start`,
        `answer_end`, `error`.
        """
        name = self.task_names[index]

        def fill(texts):
            return tf.fill(tf.shape(texts), name)

        def classified(out):
            return {key: out[key] for key in ("prediction", "scores", "task", "error")}

        if name in self.span_task_names:
            def answer(question, context):
                out = serve(fill(question), question, context)
                return {"answer": out["prediction"], "score": out["scores"][:, 0],
                        "answer_start": out["answer_start"], "answer_end": out["answer_end"],
                        "error": out["error"]}
            return tf.function(answer, input_signature=[_STRINGS] * 2)
        if int(self._text_modes[index]) == SINGLE:
            return tf.function(
                lambda text_a: classified(serve(fill(text_a), text_a, tf.zeros_like(text_a))),
                input_signature=[_STRINGS])
        return tf.function(lambda text_a, text_b: classified(serve(fill(text_a), text_a, text_b)),
                           input_signature=[_STRINGS] * 2)

    def signatures(self, serve):
        """{signature key: concrete function}: `serving_default` and one per task name.

        `serve` is a `serve_function()`, traced once for all of them.
        """
        signatures = {"serving_default": serve.get_concrete_function()}
        for index, name in enumerate(self.task_names):
            signatures[name] = self.task_signature(serve, index).get_concrete_function()
        return signatures


def cut_to_longest(inputs, min_width=1):
    """The batch's input dict cut to its longest example (at least `min_width`).

    Padding costs compute and changes nothing else: keys on padding are masked.
    """
    width = tf.maximum(tf.reduce_max(tf.reduce_sum(inputs["input_mask"], axis=1)), min_width)
    return {name: value[:, :width] for name, value in inputs.items()}


def _concat_rows(first, second):
    """Two input dicts as one batch, the narrower padded to the wider's width."""
    width = tf.maximum(tf.shape(first["input_mask"])[1], tf.shape(second["input_mask"])[1])
    return {name: tf.concat([tf.pad(part[name], [[0, 0], [0, width - tf.shape(part[name])[1]]])
                             for part in (first, second)], 0) for name in INPUT_NAMES}


def _scatter(size, rows, values, base):
    """`base` (a `[size, ...]` tensor, or one row's value for every row) with `values` at `rows`."""
    base = tf.convert_to_tensor(base, values.dtype)
    if base.shape.rank < values.shape.rank:
        base = tf.broadcast_to(base, tf.concat([[size], tf.shape(base)], 0))
    return tf.dynamic_stitch([tf.range(size), tf.cast(rows, tf.int32)], [base, values])


def _keys(task):
    """Task names as `task_key` makes them: case, dashes and underscores ignored."""
    return tf.strings.regex_replace(tf.strings.lower(task, encoding="utf-8"), r"[^\pL\pN]", "")


def _is_utf8(texts):
    return tf.equal(tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                                 replace_control_characters=False), texts)


def _span_error(names, what):
    return tf.strings.join([what, ": task ", names, " answers a question (text_a) from a "
                            "context (text_b)"])
