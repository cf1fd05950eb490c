"""SQuAD features: packing, windows, max context, answer alignment; constructed and real data."""

import numpy as np
import pytest

import bert_adapters
from bert_adapters.data.squad import SquadExample, read_squad_json
from bert_adapters.tasks.squad_features import convert_examples
from conftest import require_data


@pytest.fixture(scope="module")
def tokenizer():
    return bert_adapters.load_tokenizer("minilm_l6", max_seq_length=384)


def _example(context, question="what is it?", answer=None, qas_id="q"):
    answers = ()
    if answer is not None:
        answers = ((answer, context.index(answer)),) if isinstance(answer, str) else (answer,)
    return SquadExample(qas_id=qas_id, question_text=question, context_text=context,
                        answers=answers, title="t")


def _ids(tokenizer, text):
    return tokenizer.tokenize([text]).to_list()[0]


def _answer_text(features, example, row):
    start, end = features.start_positions[row], features.end_positions[row]
    return example.context_text[features.token_to_char[row, start, 0]:
                                features.token_to_char[row, end, 1]]


def test_packing(tokenizer):
    example = _example("The Broncos won Super Bowl 50.", "Who won?", "Broncos")
    features = convert_examples([example], tokenizer, max_seq_length=24, is_training=True)
    query, context = _ids(tokenizer, "Who won?"), _ids(tokenizer, example.context_text)
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    used = 1 + len(query) + 1 + len(context) + 1
    assert len(features) == 1 and features.input_word_ids.dtype == np.int32
    np.testing.assert_array_equal(features.input_word_ids[0],
                                  [cls] + query + [sep] + context + [sep] + [0] * (24 - used))
    np.testing.assert_array_equal(features.input_mask[0], [1] * used + [0] * (24 - used))
    offset = len(query) + 2
    np.testing.assert_array_equal(features.input_type_ids[0],
                                  [0] * offset + [1] * (len(context) + 1) + [0] * (24 - used))
    # Only the context's tokens map to characters; each maps to its own word here.
    chars = features.token_to_char[0]
    assert (chars[:offset] == -1).all() and (chars[offset + len(context):] == -1).all()
    words = [example.context_text[a:b] for a, b in chars[offset:offset + len(context)]]
    assert words == ["The", "Broncos", "won", "Super", "Bowl", "50", "."]
    assert features.token_is_max_context[0].tolist() == (
        [False] * offset + [True] * len(context) + [False] * (24 - offset - len(context)))
    assert features.start_positions[0] == features.end_positions[0] == offset + 1
    assert _answer_text(features, example, 0) == "Broncos"
    assert features.example_index.tolist() == [0] and features.num_unaligned == 0
    assert set(features.inputs()) == {"input_word_ids", "input_mask", "input_type_ids"}


def test_not_training_has_no_labels_and_keeps_every_question(tokenizer):
    examples = [_example("Tokyo is in Japan.", answer="Japan"), _example("No answer here.")]
    features = convert_examples(examples, tokenizer, max_seq_length=32)
    assert features.start_positions.tolist() == features.end_positions.tolist() == [0, 0]
    assert features.example_index.tolist() == [0, 1]


def test_query_truncated(tokenizer):
    question = " ".join(["why"] * 20)
    features = convert_examples([_example("Because.", question)], tokenizer,
                                max_seq_length=32, max_query_length=5)
    ids = features.input_word_ids[0]
    assert ids[6] == tokenizer.sep_id and (ids[1:6] == _ids(tokenizer, "why")[0]).all()


def test_non_ascii_context(tokenizer):
    context = ("Beyoncé Giselle Knowles-Carter (born 1981) sang in Köln’s Straßenfest; "
               "Zoë’s naïveté, São Paulo. ½ mile.")
    answers = ["Beyoncé Giselle Knowles-Carter", "Köln’s Straßenfest", "Zoë’s naïveté",
               "São Paulo", "½ mile", "1981"]
    examples = [_example(context, answer=a, qas_id=str(i)) for i, a in enumerate(answers)]
    features = convert_examples(examples, tokenizer, max_seq_length=64, is_training=True)
    assert features.num_unaligned == 0 and len(features) == len(answers)
    assert [_answer_text(features, e, i) for i, e in enumerate(examples)] == answers


def _long_example(num_words, answer_word=None):
    # Distinct one-piece words ("0" .. "299" are all in BERT's uncased vocabulary).
    context = " ".join(str(i) for i in range(num_words))
    answer = None
    if answer_word is not None:
        answer = (str(answer_word), context.index(f" {answer_word} ") + 1)
    return _example(context, "where?", answer)


def test_windows_and_stride(tokenizer):
    example = _long_example(100, answer_word=25)
    context = _ids(tokenizer, example.context_text)
    query = _ids(tokenizer, "where?")
    assert len(context) == 100 and len(query) == 2
    # 35 rows - [CLS] - 2 query pieces - 2 [SEP] = 30 context pieces per window.
    features = convert_examples([example], tokenizer, max_seq_length=35, doc_stride=10,
                                is_training=True)
    offset = 4
    # Windows start at 0, 10, ..., 70; the one at 70 reaches the end (70 + 30 = 100).
    assert len(features) == 8
    for window, start in enumerate(range(0, 80, 10)):
        np.testing.assert_array_equal(features.input_word_ids[window, offset:offset + 30],
                                      context[start:start + 30])
        assert features.input_word_ids[window, offset + 30] == tokenizer.sep_id
    # Word 25 is in windows 0 (25 left, 4 right), 1 (15, 14) and 2 (5, 24):
    # the most context on both sides is window 1's min(15, 14) = 14.
    holder = [w for w in range(8)
              if 0 <= 25 - 10 * w < 30
              and features.token_is_max_context[w, offset + 25 - 10 * w]]
    assert holder == [1]
    # Every context piece is scored in exactly one window.
    counts = np.zeros(100, int)
    for w in range(8):
        start = 10 * w
        counts[start:start + 30] += features.token_is_max_context[w, offset:offset + 30]
    assert (counts == 1).all()
    # The answer (piece 25) is labelled in the windows holding it, [CLS] elsewhere.
    assert features.start_positions.tolist() == [offset + 25, offset + 15, offset + 5,
                                                 0, 0, 0, 0, 0]
    assert features.start_positions.tolist() == features.end_positions.tolist()
    assert {_answer_text(features, example, w) for w in range(3)} == {"25"}


def test_last_window_is_shorter_when_stride_does_not_fit(tokenizer):
    features = convert_examples([_long_example(45)], tokenizer, max_seq_length=35,
                                doc_stride=20)
    # Starts 0 and 20; 20 + 30 >= 45, so the second window holds pieces 20..44.
    assert len(features) == 2
    assert features.input_mask.sum(axis=1).tolist() == [35, 4 + 25 + 1]


def test_answer_partly_in_a_window_points_at_cls(tokenizer):
    context = " ".join(str(i) for i in range(60))
    example = _example(context, "where?", "28 29 30 31")
    features = convert_examples([example], tokenizer, max_seq_length=35, doc_stride=20,
                                is_training=True)
    # Windows [0, 30), [20, 50), [40, 60): only the second holds pieces 28..31 whole.
    assert features.start_positions.tolist() == [0, 4 + 8, 0]
    assert features.end_positions.tolist() == [0, 4 + 11, 0]
    assert _answer_text(features, example, 1) == "28 29 30 31"


def test_unaligned_training_answers_are_dropped(tokenizer):
    context = "Tokyo    is in Japan."
    assert context[5:8] == "   "
    examples = [_example(context, answer=("   ", 5), qas_id="spaces"),
                _example(context, answer=("Japan", 40), qas_id="outside"),
                _example(context, answer="Japan", qas_id="good"),
                _example(context, qas_id="none")]
    features = convert_examples(examples, tokenizer, max_seq_length=32, is_training=True)
    assert features.num_unaligned == 3
    assert features.unaligned_ids == ["spaces", "outside", "none"]
    assert features.example_index.tolist() == [2]
    # Not training: nothing is dropped.
    assert len(convert_examples(examples, tokenizer, max_seq_length=32)) == 4


def test_sub_word_answer_keeps_the_whole_word(tokenizer):
    # "Japan" inside "Japanese" (one piece): the span covers the word, which holds the answer.
    example = _example("The Japanese army.", answer=("Japan", 4))
    features = convert_examples([example], tokenizer, max_seq_length=32, is_training=True)
    assert _answer_text(features, example, 0) == "Japanese"


def test_empty_context_and_no_examples(tokenizer):
    features = convert_examples([_example("   ")], tokenizer, max_seq_length=16)
    assert len(features) == 1 and (features.token_to_char == -1).all()
    assert features.input_mask[0].sum() == 1 + len(_ids(tokenizer, "what is it?")) + 2
    empty = convert_examples([], tokenizer, max_seq_length=16)
    assert empty.input_word_ids.shape == (0, 16) and empty.token_to_char.shape == (0, 16, 2)


def test_bad_lengths(tokenizer):
    long_question = _example("Because.", " ".join(["why"] * 70), qas_id="long")
    with pytest.raises(ValueError, match="question 'long': its 64 query pieces leave no room "
                                         "for the context in max_seq_length 67"):
        convert_examples([long_question], tokenizer, max_seq_length=67, max_query_length=64)
    # One context piece per window: "because" and ".".
    assert len(convert_examples([long_question], tokenizer, max_seq_length=68)) == 2
    with pytest.raises(ValueError, match="doc_stride"):
        convert_examples([], tokenizer, doc_stride=0)


def test_real_dev_answers_recovered(tokenizer):
    """First gold answer of each dev question, cut back out of the original text.

    Measured: 10,536 of the 10,570 questions whose answer lies inside a window
    (99.68%) give back exactly the gold text; the rest are answers that are part
    of a word piece ("Japan" in "Japanese", "wards" in "backwards"), which no
    token-level span can give. Converting the 10,570 questions takes ~3 s.
    """
    path = require_data("squad", "v1.1", "dev-v1.1.json")
    examples = read_squad_json(str(path), is_training=True).examples
    features = convert_examples(examples, tokenizer, max_seq_length=384, doc_stride=128,
                                max_query_length=64, is_training=True)
    assert features.num_unaligned == 0
    assert features.input_word_ids.shape == (len(features), 384)
    assert 10570 < len(features) < 12000  # Some contexts need two windows.
    recovered, inside = {}, set()
    for row in np.flatnonzero(features.start_positions > 0):
        example = examples[features.example_index[row]]
        inside.add(example.qas_id)
        if _answer_text(features, example, row) == example.answers[0][0].strip():
            recovered[example.qas_id] = True
    share = len(recovered) / len(inside)
    print(f"recovered exactly: {len(recovered)} / {len(inside)} = {share:.2%}")
    assert len(inside) == len(examples)  # With 384 tokens every dev answer fits a window.
    assert share >= 0.99
