"""The graph's best-span search against `squad_postprocess.postprocess` (the trainer's)."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters import checkpoints
from bert_adapters.bank.span_search import best_spans
from bert_adapters.bank.span_windows import span_windows
from bert_adapters.data.squad import SquadExample
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.model.heads import MASKED_LOGIT
from bert_adapters.tasks.squad_features import convert_examples
from bert_adapters.tasks.squad_postprocess import postprocess

CONTEXTS = [
    "Beyoncé  Giselle Knowles-Carter (born 1981) is a singer; Beyoncé sang in Köln.",
    "東京 is the capital of Japan. 😀 The the the the the the the the the the the the.",
    "Denver Broncos defeated the Carolina Panthers 24–10 to earn their third title " * 3,
    "   ",   # No pieces: one empty window, no candidate, answer "".
    "one",
]
# (n_best_size, max_answer_length) per question.
SETTINGS = [(20, 30), (3, 2), (5, 4), (20, 30), (1, 1)]


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(checkpoints.locate_vocab("minilm_l6")[0], lower_case=True)


def _graph_answers(tokenizer, examples, settings, start_logits, end_logits):
    ids, starts, ends = tokenizer.tokenize_with_offsets([e.context_text for e in examples])
    count = len(examples)
    windows = span_windows(tokenizer.tokenize([e.question_text for e in examples]), ids,
                           [24] * count, [6] * count, [8] * count, tokenizer.cls_id,
                           tokenizer.sep_id)
    width = windows.inputs["input_mask"].shape[1]
    settings = tf.constant(settings, tf.int32)
    search = tf.function(best_spans, reduce_retracing=True)
    return search(tf.constant(start_logits[:, :width]), tf.constant(end_logits[:, :width]),
                  windows, (settings[:, 0], settings[:, 1]),
                  tf.constant([e.context_text for e in examples]), starts, ends,
                  max(n for n, _ in SETTINGS))


@pytest.mark.parametrize("ties", [False, True])
def test_answers_as_the_trainers_search(tokenizer, ties):
    examples = [SquadExample(qas_id=str(i), question_text=f"who is number {i}?",
                             context_text=c, answers=(), title="")
                for i, c in enumerate(CONTEXTS)]
    features = convert_examples(examples, tokenizer, 24, 6, 8)
    assert len(features) > 2 * len(examples)   # Several windows per question.
    rng = np.random.default_rng(int(ties))
    shape = features.input_mask.shape
    # Small integers: many equal logits and equal sums, so that ties are
    # broken as BERT breaks them (lower position, then window / start / end order).
    draw = (lambda: rng.integers(-3, 4, shape)) if ties else (lambda: rng.normal(0, 2, shape))
    start_logits, end_logits = (np.where(features.input_mask > 0, draw(), MASKED_LOGIT)
                                .astype(np.float32) for _ in range(2))
    # The last question's one piece is its best start and end: with n_best_size 1
    # the answer is "one", of probability 1.
    row = np.flatnonzero(features.example_index == len(examples) - 1)[0]
    piece = np.flatnonzero(features.token_to_char[row, :, 0] >= 0)[0]
    start_logits[row, piece] = end_logits[row, piece] = 10.0
    answers = _graph_answers(tokenizer, examples, SETTINGS, start_logits, end_logits)
    for i, (example, (n_best, longest)) in enumerate(zip(examples, SETTINGS)):
        rows = features.example_index == i
        own = convert_examples([example], tokenizer, 24, 6, 8)
        predictions, nbest = postprocess([example], own, start_logits[rows], end_logits[rows],
                                         n_best, longest)
        text = answers.text[i].numpy().decode("utf-8")
        assert text == predictions[example.qas_id]
        start, end = int(answers.char_start[i]), int(answers.char_end[i])
        if text:
            assert example.context_text[start:end] == text
            expected = nbest[example.qas_id][0]["probability"]
            assert float(answers.score[i]) == pytest.approx(expected, abs=1e-6)
        else:
            assert (start, end, float(answers.score[i])) == (-1, -1, 0.0)
    texts = [t.decode("utf-8") for t in answers.text.numpy()]
    assert texts[3] == "" and sum(bool(t) for t in texts) >= 3
    assert 0 < float(answers.score[0]) < 1
    assert (texts[4], float(answers.score[4])) == ("one", 1.0)
