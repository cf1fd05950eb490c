"""SQuAD questions -> BERT span-extraction features (`[CLS] query [SEP] window [SEP]`).

What google-research/bert's `run_squad.py` (`convert_examples_to_features`)
produces, with one change of method: BERT splits the context on whitespace,
WordPiece-tokenizes each word and keeps word indices, then projects predicted
pieces back to words and re-aligns them with the original text
(`get_final_text`). Here each piece carries its span of the original context
in characters (`BertTokenizer.tokenize_with_offsets`), so an answer's
characters map straight to the pieces that cover them, and a predicted span is
cut straight out of the original text (`squad_postprocess`).

As in BERT:
  * the query keeps its first `max_query_length` pieces;
  * a context longer than `max_seq_length - len(query) - 3` pieces is cut into
    windows that start `doc_stride` pieces apart, the last one ending at the
    context's end;
  * in training, a window that does not hold the whole answer points at
    `[CLS]` (start = end = 0) and is still trained on;
  * a piece seen in several windows is scored in the window where it has the
    most context on both sides (`_check_is_max_context`): min(left, right)
    + 0.01 * window length, the first window winning ties.

Example:
    features = convert_examples(data.examples, load_tokenizer("minilm_l6"),
                                max_seq_length=384, is_training=True)
    features.input_word_ids.shape  # [num_features, 384]
"""

import dataclasses

import numpy as np
from absl import logging

_CONTEXT_BATCH = 256  # Distinct contexts tokenized per call.
_QUESTION_BATCH = 2048  # Questions tokenized per call.
_MAX_LISTED = 10  # Unaligned question ids quoted in a warning.


@dataclasses.dataclass
class SquadFeatures:
    """Encoder inputs, labels and the way back to the text, one row per window.

    Args:
        input_word_ids: int32 `[num_features, max_seq_length]`,
            `[CLS] query [SEP] window [SEP]`, zero padded.
        input_mask: int32 `[num_features, max_seq_length]`, 1 on tokens.
        input_type_ids: int32 `[num_features, max_seq_length]`, 1 on the
            window and its `[SEP]`.
        start_positions: int32 `[num_features]`, the answer's first token in
            the row; 0 (`[CLS]`) when the window does not hold the answer or
            when not training.
        end_positions: int32 `[num_features]`, its last token, likewise.
        example_index: int32 `[num_features]`, the row's question in the
            examples given.
        token_to_char: int32 `[num_features, max_seq_length, 2]`: for a token
            of the window, its `(char_start, char_end)` in the question's
            original `context_text`; -1 for `[CLS]`, the query, `[SEP]` and
            padding.
        token_is_max_context: bool `[num_features, max_seq_length]`: the token
            is scored in this window (see the module docstring).
        num_unaligned: training questions dropped because their answer could
            not be matched to tokens.
        unaligned_ids: their ids.
    """

    input_word_ids: np.ndarray
    input_mask: np.ndarray
    input_type_ids: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    token_to_char: np.ndarray
    token_is_max_context: np.ndarray
    num_unaligned: int = 0
    unaligned_ids: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.example_index)

    def inputs(self):
        """The encoder's input dict: `input_word_ids`, `input_mask`, `input_type_ids`."""
        return {"input_word_ids": self.input_word_ids, "input_mask": self.input_mask,
                "input_type_ids": self.input_type_ids}


@dataclasses.dataclass
class _Context:
    """One distinct context: its pieces and their character spans."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def convert_examples(examples, tokenizer, max_seq_length=384, doc_stride=128,
                     max_query_length=64, is_training=False):
    """Turns SQuAD questions into windows of BERT input.

    Args:
        examples: `SquadExample`s (`bert_adapters.data.squad`).
        tokenizer: a `bert_adapters.data.tokenization.BertTokenizer`; only its
            vocabulary and casing are used (not its `max_seq_length`).
        max_seq_length: int, length of every row.
        doc_stride: int >= 1, pieces between the starts of two windows.
        max_query_length: int >= 1, the most query pieces kept.
        is_training: label each window with the first gold answer's tokens;
            questions whose answer does not match any tokens are dropped
            (`num_unaligned`, `unaligned_ids`).

    Returns:
        `SquadFeatures`; every question kept has at least one row, in the
        order of `examples`.
    """
    if doc_stride < 1 or max_query_length < 1:
        raise ValueError(f"doc_stride and max_query_length must be >= 1, got {doc_stride} "
                         f"and {max_query_length}")
    examples = list(examples)
    contexts, context_of = _tokenize_contexts(examples, tokenizer)
    questions = _tokenize_questions(examples, tokenizer)

    rows = {name: [] for name in ("ids", "types", "token_to_char", "max_context")}
    lengths, start_positions, end_positions, example_index, unaligned = [], [], [], [], []
    for index, example in enumerate(examples):
        context = contexts[context_of[index]]
        query = questions[index][:max_query_length]
        answer = None
        if is_training:
            answer = _answer_tokens(example, context)
            if answer is None:
                unaligned.append(example.qas_id)
                continue
        max_context_pieces = max_seq_length - len(query) - 3  # [CLS] query [SEP] ... [SEP]
        if max_context_pieces < 1:
            raise ValueError(
                f"question {example.qas_id!r}: its {len(query)} query pieces leave no room for "
                f"the context in max_seq_length {max_seq_length}; lower max_query_length "
                f"({max_query_length}) below {max_seq_length - 3} or raise max_seq_length")
        spans = _doc_spans(len(context.ids), max_context_pieces, doc_stride)
        best_span = _max_context_spans(spans, len(context.ids))
        offset = len(query) + 2  # The window's first position: after [CLS] query [SEP].
        for span_index, (start, length) in enumerate(spans):
            window = slice(start, start + length)
            ids = np.zeros(max_seq_length, np.int32)
            ids[0] = tokenizer.cls_id
            ids[1:offset - 1] = query
            ids[offset - 1] = tokenizer.sep_id
            ids[offset:offset + length] = context.ids[window]
            ids[offset + length] = tokenizer.sep_id
            types = np.zeros(max_seq_length, np.int32)
            types[offset:offset + length + 1] = 1
            token_to_char = np.full((max_seq_length, 2), -1, np.int32)
            token_to_char[offset:offset + length, 0] = context.starts[window]
            token_to_char[offset:offset + length, 1] = context.ends[window]
            max_context = np.zeros(max_seq_length, bool)
            max_context[offset:offset + length] = best_span[window] == span_index
            first = last = 0
            if answer is not None and answer[0] >= start and answer[1] < start + length:
                first, last = answer[0] - start + offset, answer[1] - start + offset
            rows["ids"].append(ids)
            rows["types"].append(types)
            rows["token_to_char"].append(token_to_char)
            rows["max_context"].append(max_context)
            lengths.append(offset + length + 1)
            start_positions.append(first)
            end_positions.append(last)
            example_index.append(index)

    if unaligned:
        listed = ", ".join(unaligned[:_MAX_LISTED])
        more = f" and {len(unaligned) - _MAX_LISTED} more" if len(unaligned) > _MAX_LISTED else ""
        logging.warning("SQuAD features: dropped %d training question(s) whose answer matches "
                        "no tokens: %s%s", len(unaligned), listed, more)
    if rows["ids"]:
        mask = np.arange(max_seq_length)[np.newaxis, :] < np.asarray(lengths)[:, np.newaxis]
        arrays = dict(input_word_ids=np.stack(rows["ids"]), input_mask=mask.astype(np.int32),
                      input_type_ids=np.stack(rows["types"]),
                      token_to_char=np.stack(rows["token_to_char"]),
                      token_is_max_context=np.stack(rows["max_context"]))
    else:
        arrays = dict(input_word_ids=np.zeros((0, max_seq_length), np.int32),
                      input_mask=np.zeros((0, max_seq_length), np.int32),
                      input_type_ids=np.zeros((0, max_seq_length), np.int32),
                      token_to_char=np.zeros((0, max_seq_length, 2), np.int32),
                      token_is_max_context=np.zeros((0, max_seq_length), bool))
    return SquadFeatures(start_positions=np.asarray(start_positions, np.int32),
                         end_positions=np.asarray(end_positions, np.int32),
                         example_index=np.asarray(example_index, np.int32),
                         num_unaligned=len(unaligned), unaligned_ids=unaligned, **arrays)


def _tokenize_contexts(examples, tokenizer):
    """Each distinct context tokenized once, and each example's context index."""
    index_of = {}
    context_of = [index_of.setdefault(e.context_text, len(index_of)) for e in examples]
    texts = list(index_of)
    contexts = []
    for begin in range(0, len(texts), _CONTEXT_BATCH):
        ids, starts, ends = tokenizer.tokenize_with_offsets(texts[begin:begin + _CONTEXT_BATCH])
        splits = ids.row_splits.numpy()
        ids, starts, ends = (t.flat_values.numpy() for t in (ids, starts, ends))
        for row in range(len(splits) - 1):
            piece = slice(splits[row], splits[row + 1])
            contexts.append(_Context(ids[piece], starts[piece], ends[piece]))
    return contexts, context_of


def _tokenize_questions(examples, tokenizer):
    """Each question's pieces, as int32 arrays."""
    questions = []
    for begin in range(0, len(examples), _QUESTION_BATCH):
        batch = [e.question_text for e in examples[begin:begin + _QUESTION_BATCH]]
        ids = tokenizer.tokenize(batch)
        splits, flat = ids.row_splits.numpy(), ids.flat_values.numpy()
        questions += [flat[splits[i]:splits[i + 1]] for i in range(len(batch))]
    return questions


def _answer_tokens(example, context):
    """`(first, last)` context pieces of the first gold answer, or None.

    The pieces are those whose characters overlap the answer's
    `[answer_start, answer_start + len(text))`; they match when the text they
    cover holds the answer (whitespace collapsed, as BERT's check), which
    fails when the answer is only whitespace or characters the tokenizer
    drops, or lies outside the context.
    """
    if not example.answers:
        return None
    text, char_start = example.answers[0]
    char_end = char_start + len(text)
    first = int(np.searchsorted(context.ends, char_start, side="right"))
    last = int(np.searchsorted(context.starts, char_end, side="left")) - 1
    if first > last or first >= len(context.ids) or last < 0:
        return None
    covered = example.context_text[context.starts[first]:context.ends[last]]
    wanted = " ".join(text.split())
    if not wanted or wanted not in " ".join(covered.split()):
        return None
    return first, last


def _doc_spans(num_tokens, max_tokens, doc_stride):
    """`(start, length)` of each window over `num_tokens` context pieces.

    As BERT: windows of up to `max_tokens` pieces, each starting `doc_stride`
    (at most the previous window's length) after the previous one, until one
    reaches the end. An empty context still gets one (empty) window, so that
    every question has a row.
    """
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def _max_context_spans(spans, num_tokens):
    """For each context piece, the index of the window that gives it most context.

    BERT's `_check_is_max_context`: a piece's score in a window is
    min(pieces left of it, pieces right of it) + 0.01 * window length; the
    first window with the highest score wins.
    """
    positions = np.arange(num_tokens)
    scores = np.full((len(spans), num_tokens), -np.inf)
    for index, (start, length) in enumerate(spans):
        inside = (positions >= start) & (positions < start + length)
        left, right = positions - start, start + length - 1 - positions
        scores[index, inside] = (np.minimum(left, right) + 0.01 * length)[inside]
    return np.argmax(scores, axis=0) if num_tokens else np.zeros(0, np.int64)
