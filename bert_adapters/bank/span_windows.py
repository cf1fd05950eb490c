"""SQuAD questions cut into `[CLS] query [SEP] window [SEP]` rows, as graph ops.

The graph twin of `tasks/squad_features.convert_examples` (prediction only),
so that the bank's SavedModel windows long contexts as the task's own
`run_squad.py` did, with each example's own settings (a bank may hold span
tasks trained with different lengths):
  * the query keeps its first `max_query_length` pieces;
  * a context longer than `max_seq_length - len(query) - 3` pieces is cut
    into windows starting `min(that, doc_stride)` pieces apart, the last one
    ending at the context's end; an empty context still gets one (empty)
    window, so that every question has a row;
  * a piece seen in several windows is scored in the one where it has the
    most context (BERT's `_check_is_max_context`): min(pieces left of it,
    pieces right of it) + 0.01 * window length, the first window winning
    ties. The score is computed in float64 as numpy computes it there, so
    that ties fall the same way.
BERT's loop over window starts has a closed form: every window but the last
holds the most pieces, so window j starts at `j * step` and there are
`1 + ceil(max(0, n - most) / step)` of them.
"""

import collections

import tensorflow as tf

SpanWindows = collections.namedtuple(
    "SpanWindows", ["inputs", "example", "context_piece", "max_context"])
SpanWindows.__doc__ = """The rows of a batch of questions.

Args:
    inputs: the encoder's input dict, int32 `[num_windows, width]`, width
        the longest row's.
    example: int32 `[num_windows]`, each row's question, rows of a question
        together and in window order.
    context_piece: int32 `[num_windows, width]`, the index among its
        question's context pieces of the piece at each position; -1 off the
        window (`[CLS]`, the query, `[SEP]`, padding).
    max_context: bool `[num_windows, width]`, the piece at that position is
        scored in this row (false off the window).
"""


def span_windows(question_ids, context_ids, max_seq_length, doc_stride, max_query_length,
                 cls_id, sep_id):
    """Each question's windows of its context (see the module docstring).

    Args:
        question_ids: int32 `tf.RaggedTensor` `[num_questions, (pieces)]`.
        context_ids: int32 `tf.RaggedTensor` `[num_questions, (pieces)]`.
        max_seq_length, doc_stride, max_query_length: int32 `[num_questions]`,
            each question's task settings; `max_seq_length - max_query_length
            - 3 >= 1` (the bank checks it when it takes a task).
        cls_id, sep_id: the `[CLS]` and `[SEP]` ids.

    Returns:
        `SpanWindows`.
    """
    query_length = tf.minimum(tf.cast(question_ids.row_lengths(), tf.int32), max_query_length)
    num_pieces = tf.cast(context_ids.row_lengths(), tf.int32)
    most = max_seq_length - query_length - 3
    step = tf.minimum(most, doc_stride)
    num_windows = 1 + (tf.maximum(num_pieces - most, 0) + step - 1) // step
    example = tf.repeat(tf.range(tf.size(num_windows)), num_windows)
    first_row = tf.cumsum(num_windows, exclusive=True)
    window = tf.range(tf.size(example)) - tf.gather(first_row, example)

    def of_row(values):  # Each row's question's value.
        return tf.gather(values, example)

    start = window * of_row(step)
    length = tf.minimum(of_row(num_pieces) - start, of_row(most))
    offset = of_row(query_length) + 2   # The window's first position: after [CLS] query [SEP].
    ends = offset + length               # The position of the last [SEP].
    width = tf.maximum(tf.reduce_max(tf.concat([ends + 1, [1]], 0)), 1)
    position = tf.range(width)[tf.newaxis, :]
    offset, ends, start = offset[:, tf.newaxis], ends[:, tf.newaxis], start[:, tf.newaxis]
    in_query = (position >= 1) & (position < offset - 1)
    in_window = (position >= offset) & (position < ends)
    piece = start + position - offset    # Index among the question's context pieces.
    word_ids = tf.where(in_query, _gather_pieces(question_ids, example, position - 1),
                        _gather_pieces(context_ids, example, piece))
    word_ids = tf.where(in_query | in_window, word_ids, 0)
    word_ids = tf.where(position == 0, cls_id, word_ids)
    word_ids = tf.where((position == offset - 1) | (position == ends), sep_id, word_ids)
    inputs = {"input_word_ids": word_ids,
              "input_mask": tf.cast(position <= ends, tf.int32),
              "input_type_ids": tf.cast((position >= offset) & (position <= ends), tf.int32)}
    max_context = in_window & _is_max_context(piece, window, of_row(step), of_row(most),
                                              of_row(num_windows), of_row(num_pieces))
    return SpanWindows(inputs, example, tf.where(in_window, piece, -1), max_context)


def _gather_pieces(ragged, example, index):
    """`ragged[example[r], index[r, t]]` for each row r and position t (0 where out of range)."""
    values = tf.concat([ragged.flat_values, tf.zeros([1], ragged.dtype)], 0)
    lengths = tf.gather(tf.cast(ragged.row_lengths(), tf.int32), example)[:, tf.newaxis]
    inside = (index >= 0) & (index < lengths)
    flat = tf.gather(tf.cast(ragged.row_starts(), tf.int32), example)[:, tf.newaxis] + index
    return tf.gather(values, tf.where(inside, flat, tf.size(values) - 1))


def _is_max_context(piece, window, step, most, num_windows, num_pieces):
    """Whether each position's piece is scored in this row's window.

    Only the windows that hold piece p are compared: window j holds it when
    `j * step <= p < j * step + most`, i.e. j from `floor((p - most) / step)
    + 1` to `floor(p / step)`: at most `ceil(most / step) + 1` of them.
    """
    step, most = step[:, tf.newaxis], most[:, tf.newaxis]
    num_windows, num_pieces = num_windows[:, tf.newaxis], num_pieces[:, tf.newaxis]
    first = tf.maximum((piece - most) // step + 1, 0)                        # [rows, width]
    last = tf.minimum(piece // step, num_windows - 1)
    count = tf.reduce_max(tf.concat([[1], tf.reshape((most + step - 1) // step + 1, [-1])], 0))
    candidate = first[:, :, tf.newaxis] + tf.range(count)                   # [rows, width, c]
    holds = candidate <= last[:, :, tf.newaxis]
    begin = candidate * step[:, :, tf.newaxis]
    length = tf.minimum(num_pieces[:, :, tf.newaxis] - begin, most[:, :, tf.newaxis])
    p = piece[:, :, tf.newaxis]
    score = (tf.cast(tf.minimum(p - begin, begin + length - 1 - p), tf.float64)
             + tf.constant(0.01, tf.float64) * tf.cast(length, tf.float64))
    score = tf.where(holds, score, tf.constant(-float("inf"), tf.float64))
    best = tf.reduce_max(score, axis=-1, keepdims=True)
    # The first window of the highest score (tf.argmax leaves ties unspecified).
    winner = tf.reduce_min(tf.where(score == best, candidate, tf.int32.max), axis=-1)
    return tf.equal(winner, window[:, tf.newaxis])
