"""Each question's best answer span over all its windows, as graph ops.

The graph twin of `tasks/squad_postprocess.postprocess` (BERT's
`write_predictions` for SQuAD v1.1), so that the bank's SavedModel answers
as the task's own `run_squad.py` did:
  * in each window the `n_best_size` highest start and end logits are paired
    (`tf.math.top_k`: ties go to the lower position, as the stable argsort);
  * a pair is a candidate when both tokens lie in the window's context, the
    end is not before the start, the span has at most `max_answer_length`
    tokens and the start token is scored in this window (max context);
  * the answer is the candidate of the highest start + end logit (summed in
    float64, as there, where two float32 logits add exactly), the first in
    BERT's order (window, start rank, end rank) on ties;
  * its score is its probability in the n-best list: a softmax over the
    best `n_best_size` distinct answer texts.
A question without any candidate gets "" (as `predictions.json`), score 0
and character offsets -1.
"""

import collections

import tensorflow as tf

SpanAnswers = collections.namedtuple(
    "SpanAnswers", ["text", "score", "char_start", "char_end"])
SpanAnswers.__doc__ = """One answer per question.

Args:
    text: `tf.string` `[num_questions]`, cut from the original context.
    score: float32 `[num_questions]`, the answer's n-best probability.
    char_start, char_end: int32 `[num_questions]`, `context[char_start:char_end]`
        (Python's code-point indexing) is the answer; -1 without one.
"""


def best_spans(start_logits, end_logits, windows, settings, contexts, char_starts, char_ends,
               max_n_best):
    """The answer of every question (see the module docstring).

    Args:
        start_logits, end_logits: float32 `[num_windows, width]`, positions
            off a row's tokens already masked.
        windows: the `SpanWindows` the logits are for.
        settings: (n_best_size, max_answer_length), int32 `[num_questions]`.
        contexts: `tf.string` `[num_questions]`.
        char_starts, char_ends: int32 ragged `[num_questions, (pieces)]`,
            each context piece's character span.
        max_n_best: int, the largest `n_best_size` of any question.

    Returns:
        `SpanAnswers`.
    """
    n_best, max_answer_length = (tf.gather(s, windows.example) for s in settings)
    k = tf.minimum(max_n_best, tf.shape(start_logits)[1])
    starts, ends = tf.math.top_k(start_logits, k), tf.math.top_k(end_logits, k)
    in_rank = tf.range(k)[tf.newaxis, :] < n_best[:, tf.newaxis]          # [windows, k]
    s = starts.indices[:, :, tf.newaxis]                                  # [windows, k, 1]
    e = ends.indices[:, tf.newaxis, :]                                    # [windows, 1, k]
    s_piece = tf.gather(windows.context_piece, s, batch_dims=1)
    e_piece = tf.gather(windows.context_piece, e, batch_dims=1)
    valid = ((s_piece >= 0) & tf.gather(windows.max_context, s, batch_dims=1) & (e_piece >= 0)
             & (e >= s) & (e - s + 1 <= max_answer_length[:, tf.newaxis, tf.newaxis])
             & in_rank[:, :, tf.newaxis] & in_rank[:, tf.newaxis, :])
    score = (tf.cast(starts.values, tf.float64)[:, :, tf.newaxis]
             + tf.cast(ends.values, tf.float64)[:, tf.newaxis, :])
    shape = tf.shape(valid)
    row = tf.broadcast_to(tf.range(shape[0])[:, tf.newaxis, tf.newaxis], shape)
    # Row-major over [windows, k, k]: BERT's order (window, start rank, end rank).
    candidates = {
        "example": tf.boolean_mask(tf.gather(windows.example, row), valid),
        "score": tf.boolean_mask(score, valid),
        "first": tf.boolean_mask(tf.broadcast_to(s_piece, shape), valid),
        "last": tf.boolean_mask(tf.broadcast_to(e_piece, shape), valid)}
    return _answers(candidates, settings[0], contexts, char_starts, char_ends)


def _answers(candidates, n_best, contexts, char_starts, char_ends):
    """The best candidate of each question and its n-best probability."""
    num_questions = tf.size(contexts)
    # Best first within each question, BERT's order on ties: two stable sorts.
    order = tf.argsort(candidates["score"], direction="DESCENDING", stable=True)
    order = tf.gather(order, tf.argsort(tf.gather(candidates["example"], order), stable=True))
    c = {name: tf.gather(value, order) for name, value in candidates.items()}
    char_start = tf.gather(char_starts.flat_values, tf.gather(
        tf.cast(char_starts.row_starts(), tf.int32), c["example"]) + c["first"])
    char_end = tf.gather(char_ends.flat_values, tf.gather(
        tf.cast(char_ends.row_starts(), tf.int32), c["example"]) + c["last"])
    text = tf.strings.substr(tf.gather(contexts, c["example"]), char_start,
                             char_end - char_start, unit="UTF8_CHAR")
    # The n-best list holds each text once: keep a text's first (best) candidate.
    position = tf.range(tf.size(text))
    _, same = tf.unique(tf.strings.join([tf.strings.as_string(c["example"]), text], ":"))
    first_of_text = tf.math.unsorted_segment_min(position, same, tf.size(text))
    distinct = tf.equal(tf.gather(first_of_text, same), position)
    before = tf.cumsum(tf.cast(distinct, tf.int32), exclusive=True)
    rank = before - tf.gather(tf.math.unsorted_segment_min(before, c["example"], num_questions),
                              c["example"])
    kept = distinct & (rank < tf.gather(n_best, c["example"]))
    best = tf.math.unsorted_segment_min(position, c["example"], num_questions)
    found = best < tf.size(text)   # An empty segment's minimum is the dtype's largest value.
    best = tf.where(found, best, 0)

    def of_best(values, default):
        padded = tf.concat([values, tf.constant([default], values.dtype)], 0)
        return tf.where(found, tf.gather(padded, best), default)

    # The softmax over the n-best list, of its first entry: 1 / sum(exp(s - s_best)).
    shifted = tf.exp(c["score"] - tf.gather(of_best(c["score"], 0.0), c["example"]))
    total = tf.math.unsorted_segment_sum(tf.where(kept, shifted, tf.zeros_like(shifted)),
                                         c["example"], num_questions)
    probability = tf.where(found, 1.0 / tf.where(found, total, tf.ones_like(total)), 0.0)
    return SpanAnswers(of_best(text, ""), tf.cast(probability, tf.float32),
                       of_best(char_start, -1), of_best(char_end, -1))
