"""The graph's SQuAD windows against `squad_features.convert_examples` (the trainer's)."""

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters import checkpoints
from bert_adapters.bank.span_windows import span_windows
from bert_adapters.data.squad import SquadExample
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.tasks.squad_features import convert_examples

WORDS = ("the river flows past Köln and Zürich into a sea of 海 and 😀 while "
         "people   watch from bridges built in 1871 by engineers").split(" ")


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(checkpoints.locate_vocab("minilm_l6")[0], lower_case=True)


def _examples(seed, count):
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(count):
        context = " ".join(rng.choice(WORDS, size=int(rng.integers(0, 120))))
        question = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 30))))
        examples.append(SquadExample(qas_id=str(i), question_text=question,
                                     context_text=context, answers=(), title=""))
    return examples


# (max_seq_length, doc_stride, max_query_length): windows overlapping by
# more than half, a stride longer than a window, BERT's defaults.
SETTINGS = [(40, 8, 12), (32, 40, 20), (384, 128, 64), (24, 3, 4)]


def test_windows_as_the_trainers_features(tokenizer):
    examples = _examples(0, 24)
    settings = [SETTINGS[i % len(SETTINGS)] for i in range(len(examples))]
    rows_of = {}  # example -> its rows of the trainer's features, in window order
    for setting in SETTINGS:
        indices = [i for i, s in enumerate(settings) if s == setting]
        features = convert_examples([examples[i] for i in indices], tokenizer, *setting)
        for row, position in enumerate(features.example_index):
            rows_of.setdefault(indices[position], []).append((features, row))
    reference = [(i, features, row) for i in range(len(examples))
                 for features, row in rows_of[i]]
    ids, starts, ends = tokenizer.tokenize_with_offsets([e.context_text for e in examples])
    per_example = np.array(settings, np.int32)
    windows = tf.function(span_windows)(
        tokenizer.tokenize([e.question_text for e in examples]), ids,
        *(tf.constant(per_example[:, k]) for k in range(3)), tokenizer.cls_id, tokenizer.sep_id)
    assert len(windows.example) == len(reference)
    assert max(sum(1 for e in windows.example.numpy() if e == i)
               for i in range(len(examples))) > 3  # Contexts of more than three windows.
    width = windows.inputs["input_mask"].shape[1]

    def padded(array, fill=0):  # A feature row at the batch's width.
        extra = [(0, max(0, width - array.shape[0]))] + [(0, 0)] * (array.ndim - 1)
        return np.pad(array, extra, constant_values=fill)

    for r, (example, features, row) in enumerate(reference):
        assert int(windows.example[r]) == example
        for name in ("input_word_ids", "input_mask", "input_type_ids"):
            want = getattr(features, name)[row]
            assert not want[width:].any()  # Nothing past the batch's width.
            np.testing.assert_array_equal(windows.inputs[name][r], padded(want)[:width],
                                          err_msg=name)
        piece = windows.context_piece[r].numpy()
        inside = piece >= 0
        chars = np.full((width, 2), -1)
        chars[inside, 0] = starts[example].numpy()[piece[inside]]
        chars[inside, 1] = ends[example].numpy()[piece[inside]]
        np.testing.assert_array_equal(chars, padded(features.token_to_char[row], -1)[:width])
        np.testing.assert_array_equal(windows.max_context[r],
                                      padded(features.token_is_max_context[row])[:width])


def test_empty_context_and_no_questions(tokenizer):
    windows = span_windows(tokenizer.tokenize(["who?"]), tokenizer.tokenize([""]), [16], [4],
                           [8], tokenizer.cls_id, tokenizer.sep_id)
    assert windows.example.numpy().tolist() == [0]
    assert windows.inputs["input_word_ids"].numpy().tolist() == [
        [tokenizer.cls_id] + tokenizer.tokenize(["who?"])[0].numpy().tolist()
        + [tokenizer.sep_id, tokenizer.sep_id]]
    assert not windows.max_context.numpy().any()
    none = span_windows(tokenizer.tokenize(tf.zeros([0], tf.string)),
                        tokenizer.tokenize(tf.zeros([0], tf.string)), tf.zeros([0], tf.int32),
                        tf.zeros([0], tf.int32), tf.zeros([0], tf.int32), 1, 2)
    assert none.inputs["input_word_ids"].shape[0] == 0
