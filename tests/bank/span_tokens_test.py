"""The graph's character offsets against the eager tokenizer's (`tokenize_with_offsets`)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters import checkpoints
from bert_adapters.bank.span_tokens import WHITESPACE, tokenize_with_char_offsets
from bert_adapters.data.tokenization import BertTokenizer
from conftest import require_data

# Where lower-casing, accent stripping and NFKC change byte lengths; emoji
# and words the vocabulary lacks ([UNK], stretched to the word's end);
# control, format and non-ASCII space characters; several spaces in a row;
# a word over 100 bytes; combining marks that NFD reorders (the eager
# tokenizer's difflib case).
TEXTS = [
    "Beyoncé  Knowles’s   café ½ naïve 😀😀 emoji\u200bzero  width",
    "İstanbul straße ﬁne Ǆemal ΣΑΣ Ωmega",
    "日本語のテキスト、東京タワー。 한국어 텍스트",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ①②③",
    "हिन्दी \u0915\u094d\u0937 العربية עברית",
    "\x07snow\x07man\tand\u00a0nbsp\u2028line\u3000ideographic\u205fspace",
    "e\u0301 e\u0301\u0316 A\u030a",
    "unk🙂word here " + "x" * 30 + "é" * 80 + " after " + "a" * 120 + "!",
    "ka\U0001D165\u1715b x, the a\u1715\U00016ff0 cat",
    "", "   ", "🙂" * 40,
]


@pytest.fixture(scope="module")
def vocab():
    return checkpoints.locate_vocab("minilm_l6")[0]


def test_whitespace_is_pythons_isspace():
    code_points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    chars = tf.constant([chr(c).encode("utf-8") for c in code_points])
    matched = tf.strings.regex_full_match(chars, WHITESPACE).numpy()
    assert [c for c, m in zip(code_points, matched) if m] == [
        c for c in code_points if chr(c).isspace()]


def _assert_same(tokenizer, texts):
    expected = tokenizer.tokenize_with_offsets(texts)
    graph = tf.function(lambda t: tokenize_with_char_offsets(tokenizer, t),
                        input_signature=[tf.TensorSpec([None], tf.string)])
    for got in (graph(tf.constant(texts)), tokenize_with_char_offsets(tokenizer, texts)):
        for want, have in zip(expected, got):
            assert have.dtype == tf.int32
            assert want.to_list() == have.to_list()
    return expected


@pytest.mark.parametrize("lower_case", [True, False])
def test_tricky_texts_as_the_eager_tokenizer(vocab, lower_case):
    tokenizer = BertTokenizer(vocab, lower_case=lower_case)
    ids, starts, ends = _assert_same(tokenizer, TEXTS)
    # The offsets are characters of the text as given: "Beyoncé" is one
    # word of 7 characters (8 bytes; "beyonce" after accent stripping).
    text = TEXTS[0]
    pieces = [text[s:e] for s, e in zip(starts[0].numpy(), ends[0].numpy())]
    assert "".join(pieces[:3]).lower().startswith("beyonc")
    assert max(ends[0].numpy()) <= len(text)
    unknown = np.flatnonzero(ids.flat_values.numpy() == tokenizer.unk_id)
    assert len(unknown) >= 3  # [UNK] pieces, stretched to their word's end, are covered.


def test_real_squad_contexts(vocab):
    path = require_data("squad", "v1.1", "dev-v1.1.json")
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    # Warsaw (Polish accents), Genghis Khan and Yuan dynasty (Chinese and
    # Mongolian scripts, transliterations with diacritics).
    contexts = [p["context"] for a in articles if a["title"] in (
        "Warsaw", "Genghis_Khan", "Yuan_dynasty") for p in a["paragraphs"]]
    assert len(contexts) == 150 and sum(ord(c) > 0x2E80 for t in contexts for c in t) > 50
    _assert_same(BertTokenizer(vocab, lower_case=True), contexts)
