"""SQuAD v1.1 readers: JSON files (good, malformed, real dev) and TFDS through mock data."""

import json
import logging

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bert_adapters.data.squad import SquadExample, load_squad_tfds, read_squad_json
from conftest import require_data

CONTEXT = "Beyoncé Giselle Knowles-Carter (born 1981) is a singer."


def _qa(qas_id, question, *answers):
    return {"id": qas_id, "question": question,
            "answers": [{"text": t, "answer_start": s} for t, s in answers]}


def _good_dataset():
    return {"version": "1.1", "data": [
        {"title": "Beyoncé", "paragraphs": [
            {"context": CONTEXT, "qas": [
                _qa("q1", "Who is a singer?", ("Beyoncé Giselle Knowles-Carter", 0),
                    ("Beyoncé", 0)),
                _qa("q2", "Born when?", ("1981", 37)),
            ]},
            {"context": "Second paragraph.", "qas": [
                {"id": "q3", "question": "No answers key?"},
                _qa("q4", "Wrong offset?", ("paragraph", 0)),
            ]},
        ]},
        {"title": "Other", "paragraphs": [
            {"context": "Tokyo is in Japan.", "qas": [_qa("q5", "Where?", ("Japan", 12))]},
        ]},
    ]}


def _write(tmp_path, obj, name="squad.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False),
                    encoding="utf-8")
    return str(path)


def test_good_file_for_evaluation_keeps_every_question(tmp_path):
    data = read_squad_json(_write(tmp_path, _good_dataset()), is_training=False)
    assert [e.qas_id for e in data.examples] == ["q1", "q2", "q3", "q4", "q5"]
    assert data.num_skipped == 0 and data.skipped == []
    first = data.examples[0]
    assert first == SquadExample(qas_id="q1", question_text="Who is a singer?",
                                 context_text=CONTEXT,
                                 answers=(("Beyoncé Giselle Knowles-Carter", 0), ("Beyoncé", 0)),
                                 title="Beyoncé")
    # answer_start counts characters: "1981" is at character 37 (byte 38 in UTF-8).
    assert CONTEXT[37:41] == "1981" and data.examples[1].answers == (("1981", 37),)
    assert data.examples[2].answers == ()
    # A wrong answer_start is kept for evaluation: its gold text is still valid.
    assert data.examples[3].answers == (("paragraph", 0),)
    assert data.examples[4].title == "Other"
    assert data.source.endswith("squad.json") and len(data) == 5


def test_training_skips_questions_without_a_usable_answer(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        data = read_squad_json(_write(tmp_path, _good_dataset()), is_training=True)
    assert [e.qas_id for e in data.examples] == ["q1", "q2", "q5"]
    assert data.num_skipped == 2
    assert data.skipped[0].startswith("q3") and "no answer" in data.skipped[0]
    assert data.skipped[1].startswith("q4") and "answer_start 0" in data.skipped[1]
    assert "skipped 2 training question" in caplog.text and "q4" in caplog.text


def test_read_through_gfile():
    # ram:// exists only inside TensorFlow's file systems, like gs://.
    path = "ram://squad_data_test/dev.json"
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(_good_dataset()))
    data = read_squad_json(path, is_training=False)
    assert data.source == path and len(data.examples) == 5


def test_utf8_bom_and_path_objects(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_good_dataset()).encode("utf-8"))
    assert len(read_squad_json(path, is_training=False).examples) == 5


def _paragraph(d, a, p):
    return d["data"][a]["paragraphs"][p]


# Each case: how to spoil the good file (return the new content), the message expected.
BAD_FILES = [
    # Malformed JSON: the json error's line and column.
    (lambda d: '{"version": "1.1",\n "data": [\n  {"title": "x",, }]}',
     r"bad\.json: not valid JSON: .* at line 3 column 17"),
    (lambda d: {"version": "1.1"}, r"bad\.json: expected a JSON object with a \"data\" list"),
    (lambda d: [d], r"bad\.json: expected a JSON object with a \"data\" list"),
    (lambda d: _paragraph(d, 0, 1).pop("context") and d,
     r"bad\.json: article 1 \('Beyoncé'\), paragraph 2: no \"context\" string"),
    (lambda d: _paragraph(d, 1, 0)["qas"][0].pop("id") and d,
     r"bad\.json: article 2 \('Other'\), paragraph 1, question 1: no \"id\" string"),
    (lambda d: _paragraph(d, 0, 0)["qas"][1].pop("question") and d,
     r"article 1 \('Beyoncé'\), paragraph 1, question 2: no \"question\" string"),
    (lambda d: _paragraph(d, 1, 0)["qas"][0].update(id="q2") or d,
     r"question id 'q2' appears twice: at article 1 \('Beyoncé'\), paragraph 1, question 2 "
     r"and at article 2 \('Other'\), paragraph 1, question 1"),
    (lambda d: _paragraph(d, 0, 0)["qas"][0]["answers"][1].pop("answer_start") is not None and d,
     r"article 1 \('Beyoncé'\), paragraph 1, question 1, answer 2: expected"),
    (lambda d: _paragraph(d, 0, 0).pop("qas") and d,
     r"article 1 \('Beyoncé'\), paragraph 1: no \"qas\" list"),
]


@pytest.mark.parametrize("spoil, expected", BAD_FILES)
@pytest.mark.parametrize("is_training", [False, True])
def test_bad_files_name_the_place(tmp_path, spoil, expected, is_training):
    content = spoil(_good_dataset())
    with pytest.raises(ValueError, match=expected):
        read_squad_json(_write(tmp_path, content, "bad.json"), is_training=is_training)


def test_real_dev_file():
    path = require_data("squad", "v1.1", "dev-v1.1.json")
    data = read_squad_json(str(path), is_training=False)
    assert len(data.examples) == 10570  # The official count.
    assert len({e.title for e in data.examples}) == 48
    assert len({e.context_text for e in data.examples}) == 2067
    first = data.examples[0]
    # The first question of the official dev file.
    assert first.qas_id == "56be4db0acb8001400a502ec"
    assert first.question_text == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers[0] == ("Denver Broncos", 177) and len(first.answers) == 3
    assert first.title == "Super_Bowl_50"
    assert all(e.answers for e in data.examples)
    # Every dev answer_start points at its text, so a training read keeps everything.
    assert read_squad_json(str(path), is_training=True).num_skipped == 0


# --- TFDS squad/v1.1 through tfds.testing.mock_data (no network, nothing prepared) ---

FAKE = [
    dict(id=b"a1", title="Beyoncé".encode(), context=CONTEXT.encode(),
         question=b"Who?", texts=["Beyoncé".encode(), b"Beyonc\xc3\xa9 Giselle"], starts=[0, 0]),
    dict(id=b"a2", title=b"T", context=b"Tokyo is in Japan.", question=b"Where?",
         texts=[b"Japan"], starts=[12]),
]


def _fake_as_dataset(builder, split, *args, **kwargs):
    assert builder.name == "squad" and builder.builder_config.name == "v1.1"
    assert str(split) == "validation"
    assert sorted(builder.info.features) == ["answers", "context", "id", "question", "title"]

    def generator():
        for row in FAKE:
            yield {"id": row["id"], "title": row["title"], "context": row["context"],
                   "question": row["question"],
                   "answers": {"text": np.array(row["texts"], object),
                               "answer_start": np.array(row["starts"], np.int32)}}

    return tf.data.Dataset.from_generator(generator, output_signature={
        "id": tf.TensorSpec([], tf.string), "title": tf.TensorSpec([], tf.string),
        "context": tf.TensorSpec([], tf.string), "question": tf.TensorSpec([], tf.string),
        "answers": {"text": tf.TensorSpec([None], tf.string),
                    "answer_start": tf.TensorSpec([None], tf.int32)}})


def test_tfds_examples_decoded():
    with tfds.testing.mock_data(as_dataset_fn=_fake_as_dataset):
        data = load_squad_tfds("validation")
    assert data.source == "tfds:squad/v1.1/validation"
    assert data.examples == [
        SquadExample(qas_id="a1", question_text="Who?", context_text=CONTEXT,
                     answers=(("Beyoncé", 0), ("Beyoncé Giselle", 0)), title="Beyoncé"),
        SquadExample(qas_id="a2", question_text="Where?", context_text="Tokyo is in Japan.",
                     answers=(("Japan", 12),), title="T"),
    ]


def test_tfds_random_mock_data_round_trip():
    # TFDS's own random examples of the real feature spec: names and nesting as TFDS has them.
    with tfds.testing.mock_data(num_examples=5):
        data = load_squad_tfds("train")
    assert len(data.examples) == 5
    for example in data.examples:
        assert isinstance(example.qas_id, str) and isinstance(example.context_text, str)
        assert all(isinstance(t, str) and isinstance(s, int) for t, s in example.answers)


def test_tfds_not_prepared_offline_error(tmp_path):
    expected = r"(?s)tfds:squad/v1.1/validation.*never downloaded"
    with pytest.raises(FileNotFoundError, match=expected):
        load_squad_tfds("validation", data_dir=str(tmp_path))


@pytest.mark.parametrize("is_training", [False, True])
def test_squad_v2_files_are_refused(tmp_path, is_training):
    v2 = _good_dataset()
    v2["version"] = "v2.0"
    with pytest.raises(ValueError, match=r"v2\.json: \"version\": 'v2\.0': SQuAD v2\.0 is not "
                                         r"supported; this project reproduces the paper's SQuAD "
                                         r"v1\.1 \(pass v1\.1 files\)$"):
        read_squad_json(_write(tmp_path, v2, "v2.json"), is_training=is_training)
    unanswerable = _good_dataset()
    _paragraph(unanswerable, 1, 0)["qas"][0].update(is_impossible=True, answers=[])
    with pytest.raises(ValueError, match=r"impossible\.json: article 2 \('Other'\), paragraph 1, "
                                         r"question 1 \('q5'\) has \"is_impossible\": true, a "
                                         r"SQuAD v2\.0 question: SQuAD v2\.0 is not supported"):
        read_squad_json(_write(tmp_path, unanswerable, "impossible.json"),
                        is_training=is_training)
    # A v1.1 file whose questions say they are answerable reads as before.
    answerable = _good_dataset()
    _paragraph(answerable, 1, 0)["qas"][0]["is_impossible"] = False
    assert len(read_squad_json(_write(tmp_path, answerable), is_training=False).examples) == 5
