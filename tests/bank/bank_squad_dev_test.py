"""The bank's SavedModel against `run_squad.py` on real SQuAD dev articles the run did not train on.

A span task is trained for a few steps by the trainer on articles 1-40 of
dev-v1.1.json (`squad_split`) and predicts articles 41-48 (1,589 questions)
plus an article of contexts in other scripts, with accents, emoji, control
characters and several spaces in a row, one of them longer than three
windows. Windows of 128 tokens every 48 make many SQuAD contexts span two or
more. The exported bank is loaded by a process that never imports
`bert_adapters` (plain tensorflow and tensorflow_text); its answers must
equal the run's `predictions.json`, text for text.

The encoder is a tiny one (2 layers, hidden 8) that carries the embedded
encoder's real WordPiece vocabulary and casing (uncased: lower-casing, NFKC
and accent stripping change byte lengths): the windows, the offsets back
into the original context and the best-span search see only the vocabulary
and casing, while MiniLM-L6 itself would spend minutes of CPU on the two
passes over 1,589 questions.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from bert_adapters import checkpoints
from bert_adapters.bank import TaskBank
from bert_adapters.data.squad_split import split_articles
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.tasks.squad import SquadConfig
from bert_adapters.training import trainer
from conftest import require_data
from tiny_runs import write_tiny_encoder

MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH = 128, 48, 24

_LONG = " ".join([
    "Die Straße   nach Köln führt über 3 Brücken; café-owners say “ça va” 😀.",
    "東京タワー（とうきょうタワー）は、東京都港区芝公園にある総合電波塔です。",
    "Москва́ — столица России, а Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "القاهرة هي عاصمة مصر، ירושלים, मुंबई भारत का सबसे बड़ा शहर है।",
    "Zero\u200bwidth, soft\u00adhyphen, tab\there, nbsp\u00a0here, ﬁ ligature, ½ cup."] * 6)

UNICODE_ARTICLE = {"title": "Unicode", "paragraphs": [
    {"context": "Beyoncé Giselle Knowles-Carter (born September 4, 1981) is an American "
                "singer,   songwriter and actress 🎤🎶. Née à Houston, Texas; her café is "
                "naïve‘s favourite.",
     "questions": ["When was Beyoncé born?", "Où est née Beyoncé?", "What emoji 🎤?"]},
    {"context": "東京は日本の首都です。人口は約1400万人で、世界最大の都市圏の一つです。"
                "大阪は二番目に大きい都市です。",
     "questions": ["日本の首都はどこですか？", "大阪は？"]},
    {"context": "Σωκράτης ήταν Έλληνας φιλόσοφος. Достоевский написал «Преступление и "
                "наказание». עברית ו-العربية are written right to left.",
     "questions": ["Who was Σωκράτης?", "Кто написал роман?"]},
    {"context": "Control\x07chars\x1fand\u2028line   separators\u3000and    many     spaces "
                "between   words   🙂🙂🙂 end.",
     "questions": ["What is between words?"]},
    {"context": _LONG, "questions": ["Which city is the capital of Russia?",
                                     "Wie viele Brücken?", "What is in the cup?"]}]}


def _unicode_article():
    paragraphs = [{"context": p["context"],
                   "qas": [{"id": f"u{i}q{j}", "question": q, "answers": []}
                           for j, q in enumerate(p["questions"])]}
                  for i, p in enumerate(UNICODE_ARTICLE["paragraphs"])]
    return {"title": UNICODE_ARTICLE["title"], "paragraphs": paragraphs}


def _questions(dataset):
    return [(q["id"], q["question"], p["context"])
            for article in dataset["data"] for p in article["paragraphs"] for q in p["qas"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("squad_dev")
    with open(require_data("squad", "v1.1", "dev-v1.1.json"), encoding="utf-8") as f:
        train, dev = split_articles(json.load(f), 40)
    held_out = len(_questions(dev))
    dev["data"].append(_unicode_article())
    for name, part in (("train.json", train), ("dev.json", dev)):
        with open(root / name, "w", encoding="utf-8") as f:
            json.dump(part, f, ensure_ascii=False)
    vocab_file, lower_case = checkpoints.locate_vocab("minilm_l6")
    with open(vocab_file, encoding="utf-8") as f:
        vocab_size = len(f.read().rstrip("\n").split("\n"))
    encoder = write_tiny_encoder(root / "encoder", vocab_size=vocab_size,
                                 max_sequence_length=MAX_SEQ_LENGTH)
    shutil.copy(vocab_file, os.path.join(encoder, "vocab.txt"))
    out = str(root / "squad")
    trainer.run(SquadConfig(
        encoder=encoder, train_file=str(root / "train.json"),
        predict_file=str(root / "dev.json"), adapter_size=8, adapter_init_scale=0.5,
        max_seq_length=MAX_SEQ_LENGTH, doc_stride=DOC_STRIDE, max_query_length=MAX_QUERY_LENGTH,
        train_batch_size=16, eval_batch_size=128, learning_rate=1e-2, max_train_steps=12,
        seed=3, do_train=True, do_predict=True, log_every_steps=4), out)
    with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
        predictions = json.load(f)
    return {"root": root, "out": out, "dev": _questions(dev), "held_out": held_out,
            "predictions": predictions, "lower_case": lower_case, "vocab_file": vocab_file}


_ANSWER = textwrap.dedent("""\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)
    model = tf.saved_model.load(sys.argv[1])
    answer = model.signatures["squad"]
    questions = json.load(open(sys.argv[2], encoding="utf-8"))
    answers, errors = [], []
    for start in range(0, len(questions), 64):
        batch = questions[start:start + 64]
        out = answer(question=tf.constant([q for q, _ in batch]),
                     context=tf.constant([c for _, c in batch]))
        answers += [a.decode("utf-8") for a in out["answer"].numpy()]
        errors += [e.decode("utf-8") for e in out["error"].numpy() if e]
    assert "bert_adapters" not in sys.modules
    json.dump({"answers": answers, "errors": errors}, open(sys.argv[3], "w", encoding="utf-8"),
              ensure_ascii=False)
""")


@pytest.mark.slow
def test_savedmodel_answers_equal_run_squad_predictions(run, tmp_path):
    assert run["held_out"] >= 1500 and run["lower_case"]
    # Windows hold at most 128 - 3 pieces of context and start 48 apart: a
    # context of more than 125 + 2 * 48 pieces needs more than three.
    tokenizer = BertTokenizer(run["vocab_file"], lower_case=True)
    pieces = tokenizer.tokenize([c for _, _, c in run["dev"]]).row_lengths().numpy()
    longest_window = MAX_SEQ_LENGTH - 3
    assert sum(pieces > longest_window) > len(pieces) // 4   # Several windows.
    assert sum(pieces > longest_window + 2 * DOC_STRIDE) > 50 and pieces[-1] > 600

    bank_dir = TaskBank.load(None, [("squad", run["out"])]).export(str(tmp_path / "bank"))
    (tmp_path / "questions.json").write_text(
        json.dumps([(q, c) for _, q, c in run["dev"]], ensure_ascii=False), encoding="utf-8")
    (tmp_path / "answer.py").write_text(_ANSWER)
    # Run from tmp_path so that the repository is not on the path.
    done = subprocess.run([sys.executable, "answer.py", bank_dir, "questions.json",
                           "answers.json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "answers.json", encoding="utf-8") as f:
        served = json.load(f)
    assert served["errors"] == []
    expected = [run["predictions"][i] for i, _, _ in run["dev"]]
    differ = [(i, want, got) for (i, _, _), want, got in zip(run["dev"], expected,
                                                             served["answers"]) if want != got]
    assert not differ, f"{len(differ)} of {len(expected)} answers differ, e.g. {differ[:5]}"
    # Real answers, not a constant: hundreds of distinct texts, non-ASCII ones
    # among them (a model of 12 steps favours a few short words).
    assert len(set(served["answers"])) > len(expected) // 8
    unicode_answers = served["answers"][run["held_out"]:]
    assert any(any(ord(ch) > 127 for ch in a) for a in unicode_answers)
