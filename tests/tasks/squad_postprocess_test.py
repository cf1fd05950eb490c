"""SQuAD post-processing: which spans may win, across windows, and the n-best list."""

import math

import numpy as np
import pytest

import bert_adapters
from bert_adapters.data.squad import SquadExample, read_squad_json
from bert_adapters.tasks.squad_metric import evaluate
from bert_adapters.tasks.squad_features import SquadFeatures, convert_examples
from bert_adapters.tasks.squad_postprocess import postprocess
from conftest import require_data

# One context of five words; windows are laid out by hand below.
CONTEXT = "alpha beta gamma delta epsilon"
WORDS = [(0, 5), (6, 10), (11, 16), (17, 22), (23, 30)]  # Character spans.
SEQ = 12
LOW = -10.0


def _example(qas_id="q", context=CONTEXT):
    return SquadExample(qas_id=qas_id, question_text="which?", context_text=context,
                        answers=(), title="t")


def _features(windows, example_index=None, words=WORDS):
    """Hand-made features: each window is a list of (position, word, is_max_context).

    Positions 0..2 play [CLS] query [SEP]; only the listed positions are context.
    """
    n = len(windows)
    token_to_char = np.full((n, SEQ, 2), -1, np.int32)
    max_context = np.zeros((n, SEQ), bool)
    for row, window in enumerate(windows):
        for position, word, is_max in window:
            token_to_char[row, position] = words[word]
            max_context[row, position] = is_max
    zeros = np.zeros((n, SEQ), np.int32)
    return SquadFeatures(
        input_word_ids=zeros, input_mask=zeros, input_type_ids=zeros,
        start_positions=np.zeros(n, np.int32), end_positions=np.zeros(n, np.int32),
        example_index=np.asarray(example_index or [0] * n, np.int32),
        token_to_char=token_to_char, token_is_max_context=max_context)


def _logits(n, starts=(), ends=()):
    """`[n, SEQ]` logits at LOW, with (row, position, value) set."""
    start, end = np.full((n, SEQ), LOW), np.full((n, SEQ), LOW)
    for row, position, value in starts:
        start[row, position] = value
    for row, position, value in ends:
        end[row, position] = value
    return start, end


# Window 0 holds words 0..3 at positions 3..6, window 1 words 2..4 at positions 3..5;
# words 2 and 3 are in both, and scored (max context) in window 1.
TWO_WINDOWS = [
    [(3, 0, True), (4, 1, True), (5, 2, False), (6, 3, False)],
    [(3, 2, True), (4, 3, True), (5, 4, True)],
]


def test_single_window_best_span():
    features = _features([TWO_WINDOWS[0]])
    start, end = _logits(1, starts=[(0, 4, 5.0)], ends=[(0, 4, 1.0), (0, 3, 3.0)])
    predictions, nbest = postprocess([_example()], features, start, end)
    assert predictions == {"q": "beta"}  # (4, 3) would end before it starts.
    assert nbest["q"][0] == {"text": "beta", "probability": nbest["q"][0]["probability"],
                             "start_logit": 5.0, "end_logit": 1.0}


def test_max_context_window_wins():
    features = _features(TWO_WINDOWS)
    # "gamma delta" has the highest logits in window 0, where its start is
    # not max context; in window 1 it only scores 1 + 1, below "epsilon"'s 2 + 2.
    start, end = _logits(2, starts=[(0, 5, 9.0), (1, 3, 1.0), (1, 5, 2.0)],
                         ends=[(0, 6, 9.0), (1, 4, 1.0), (1, 5, 2.0)])
    predictions, nbest = postprocess([_example()], features, start, end, n_best_size=3)
    assert predictions["q"] == "epsilon"
    texts = [e["text"] for e in nbest["q"]]
    assert "gamma delta" in texts
    gamma_delta = nbest["q"][texts.index("gamma delta")]
    assert (gamma_delta["start_logit"], gamma_delta["end_logit"]) == (1.0, 1.0)  # Window 1's.


def test_invalid_spans_are_never_chosen():
    # Positions 0..2 (query), 7 ([SEP]) and 8.. (padding) are outside the context.
    features = _features([[(3, 0, True), (4, 1, True), (5, 2, True), (6, 3, True)]])
    # The invalid span has the highest logits; "gamma" (5, 5) scores 1 + 1.
    cases = [
        ([(0, 6, 9.0)], [(0, 3, 9.0)], "gamma"),  # end before start
        ([(0, 1, 9.0)], [(0, 4, 9.0)], "gamma"),  # start in the query
        ([(0, 6, 9.0)], [(0, 7, 9.0)], "gamma"),  # end on [SEP] (delta alone: 9 - 10)
        ([(0, 9, 9.0)], [(0, 10, 9.0)], "gamma"),  # padding
        # (3, 6) is 4 tokens, over max_answer_length 3; (3, 5), 3 tokens, scores
        # 9 + 1, above (5, 6)'s 1 + 8.
        ([(0, 3, 9.0)], [(0, 6, 8.0)], "alpha beta gamma"),
    ]
    for bad_starts, bad_ends, expected in cases:
        start, end = _logits(1, starts=bad_starts + [(0, 5, 1.0)], ends=bad_ends + [(0, 5, 1.0)])
        predictions, nbest = postprocess([_example()], features, start, end,
                                         max_answer_length=3)
        assert predictions["q"] == expected, (bad_starts, bad_ends)
    # The same 4-token span is allowed with max_answer_length 4.
    start, end = _logits(1, starts=[(0, 3, 9.0)], ends=[(0, 6, 8.0)])
    assert postprocess([_example()], features, start, end,
                       max_answer_length=4)[0]["q"] == "alpha beta gamma delta"


def test_empty_answer_when_nothing_is_valid():
    features = _features([TWO_WINDOWS[0]], example_index=[1])
    # n_best_size 1: the only start tried is in the query.
    start, end = _logits(1, starts=[(0, 1, 9.0)], ends=[(0, 4, 9.0)])
    examples = [_example("no_features"), _example("q")]
    predictions, nbest = postprocess(examples, features, start, end, n_best_size=1)
    assert predictions == {"no_features": "", "q": ""}
    assert nbest["q"] == [{"text": "", "probability": 1.0, "start_logit": 0.0,
                           "end_logit": 0.0}]


def test_nbest_distinct_texts_and_softmax():
    features = _features(TWO_WINDOWS)
    # "gamma" (start and end at word 2) is valid in window 1 only; "alpha" in 0.
    start, end = _logits(2, starts=[(0, 3, 2.0), (1, 3, 3.0)], ends=[(0, 3, 1.0), (1, 3, 1.0)])
    _, nbest = postprocess([_example()], features, start, end, n_best_size=2)
    entries = nbest["q"]
    assert [e["text"] for e in entries] == ["gamma", "alpha"]  # Scores 4 and 3.
    # Softmax over 4 and 3: 1 / (1 + e^-1) and e^-1 / (1 + e^-1).
    assert entries[0]["probability"] == pytest.approx(1 / (1 + math.exp(-1)))
    assert entries[1]["probability"] == pytest.approx(math.exp(-1) / (1 + math.exp(-1)))


def test_nbest_keeps_each_text_once():
    # "alpha" twice in the context: spans (3, 3) and (5, 5) cut the same text.
    words = [(0, 5), (6, 10), (11, 16)]
    features = _features([[(3, 0, True), (4, 1, True), (5, 2, True)]], words=words)
    start, end = _logits(1, starts=[(0, 3, 3.0), (0, 5, 2.0)], ends=[(0, 3, 3.0), (0, 5, 2.0)])
    _, nbest = postprocess([_example(context="alpha beta alpha")], features, start, end,
                           n_best_size=3)
    # Candidates (3, 3) = 6, (3, 5) = 5, (5, 5) = 4; the third repeats the first's text.
    assert [(e["text"], e["start_logit"], e["end_logit"]) for e in nbest["q"]] == [
        ("alpha", 3.0, 3.0), ("alpha beta alpha", 3.0, 2.0)]
    assert nbest["q"][0]["probability"] == pytest.approx(1 / (1 + math.exp(-1)))


def test_shorter_logits_and_bad_shapes():
    features = _features([TWO_WINDOWS[0]])
    start, end = _logits(1, starts=[(0, 4, 5.0)], ends=[(0, 5, 5.0)])
    # Logits for the first 6 positions only: position 6 can never be chosen.
    assert postprocess([_example()], features, start[:, :6], end[:, :6])[0]["q"] == "beta gamma"
    with pytest.raises(ValueError, match="do not fit 1 features of length 12"):
        postprocess([_example()], features, np.zeros((2, SEQ)), np.zeros((2, SEQ)))
    with pytest.raises(ValueError, match="must both be"):
        postprocess([_example()], features, start, end[:, :6])
    with pytest.raises(ValueError, match="only 0 examples"):
        postprocess([], features, start, end)


def test_answer_is_original_text_through_real_features():
    tokenizer = bert_adapters.load_tokenizer("minilm_l6", max_seq_length=64)
    context = "Beyoncé's 2003 album, Dangerously in Love, sold 11 million copies in Köln."
    answers = ["Beyoncé's", "Dangerously in Love", "Köln"]
    examples = [SquadExample(qas_id=a, question_text="what?", context_text=context,
                             answers=((a, context.index(a)),), title="t") for a in answers]
    features = convert_examples(examples, tokenizer, max_seq_length=48, is_training=True)
    rows = np.arange(len(features))
    start, end = np.zeros((len(features), 48)), np.zeros((len(features), 48))
    start[rows, features.start_positions] = 5.0
    end[rows, features.end_positions] = 5.0
    assert (features.start_positions > 0).all() and (features.end_positions > 0).all()
    predictions, _ = postprocess(examples, features, start, end)
    assert predictions == {a: a for a in answers}


def test_real_dev_oracle_logits_score_near_100():
    """Features -> logits peaked at the labelled tokens -> postprocess -> official metric.

    Measured on dev-v1.1 with the embedded encoder's vocabulary: exact match
    99.68, F1 99.73 (the misses are answers inside a word piece, which no
    token span can give exactly; see squad_features_test).
    """
    path = require_data("squad", "v1.1", "dev-v1.1.json")
    examples = read_squad_json(str(path), is_training=False).examples
    tokenizer = bert_adapters.load_tokenizer("minilm_l6", max_seq_length=384)
    # Labelled as for training, so that the first gold answer's tokens are known.
    features = convert_examples(examples, tokenizer, is_training=True)
    rows = np.arange(len(features))
    start = np.zeros(features.input_word_ids.shape, np.float32)
    end = np.zeros(features.input_word_ids.shape, np.float32)
    start[rows, features.start_positions] = 10.0  # [CLS] in windows without the answer:
    end[rows, features.end_positions] = 10.0  # never a valid span.
    predictions, nbest = postprocess(examples, features, start, end)
    assert len(predictions) == len(nbest) == 10570
    gold = {e.qas_id: [text for text, _ in e.answers] for e in examples}
    result = evaluate(gold, predictions)
    print(result)
    assert result["exact_match"] >= 99.0 and result["f1"] >= 99.0
