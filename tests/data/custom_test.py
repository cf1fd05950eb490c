"""Custom classification files: CSV, TSV, JSON lines."""

import json

import numpy as np
import pytest

from bert_adapters.data import (load_custom_split, load_split, make_custom_task,
                                read_custom_labels)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_quoted_commas_newlines_and_extra_columns(tmp_path):
    long_text = "word " * 800
    path = _write(tmp_path / "train.csv",
                  "\ufeffid,title,body,label,notes\n"
                  '1,"Hello, world","Line one\nline two, with ""quotes""",pos,x\n'
                  f'2,Plain,"{long_text}",neg,\n')
    examples = load_custom_split(path, "title,body", label_field="label")
    assert examples.num_examples == 2
    assert examples.texts_a == ["Hello, world", "Plain"]
    assert examples.texts_b[0] == 'Line one\nline two, with "quotes"'
    assert examples.texts_b[1] == long_text
    assert examples.label_names == ("neg", "pos")  # Sorted.
    assert examples.labels.tolist() == [1, 0]
    assert examples.indices == ["0", "1"]
    with_ids = load_custom_split(path, ["title"], "label", index_field="id")
    assert with_ids.indices == ["1", "2"] and with_ids.texts_b is None


def test_tsv_with_quoting(tmp_path):
    path = _write(tmp_path / "dev.tsv", 'text\tlabel\n"a\tb"\t1\nc\t2\n')
    examples = load_custom_split(path, "text", "label", labels=["1", "2"])
    assert examples.texts_a == ["a\tb", "c"]
    assert examples.labels.tolist() == [0, 1]


def test_jsonl(tmp_path):
    rows = [{"q": "first?", "a": "yes", "y": 10}, {"q": "second", "a": "no", "y": 2,
                                                   "extra": [1]}]
    path = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = load_custom_split(path, ("q", "a"), "y")
    assert examples.texts_a == ["first?", "second"] and examples.texts_b == ["yes", "no"]
    # Integer labels sort numerically: 2 < 10.
    assert examples.label_names == ("2", "10")
    assert examples.labels.tolist() == [1, 0]


def test_label_normalisation_strips_whitespace(tmp_path):
    path = _write(tmp_path / "train.csv", "text,label\na, positive \nb,negative\nc,positive\n")
    examples = load_custom_split(path, "text", "label")
    assert examples.label_names == ("negative", "positive")
    assert examples.labels.tolist() == [1, 0, 1]


def test_case_variants_are_an_error_listing_them(tmp_path):
    path = _write(tmp_path / "train.csv", "text,label\na,positive\nb,Positive\nc,negative\n")
    with pytest.raises(ValueError, match=r"differ only in case: 'positive' \(first at line 2\), "
                                         r"'Positive' \(first at line 3\)"):
        load_custom_split(path, "text", "label")
    # With an explicit label set, the row is at fault, with a hint.
    with pytest.raises(ValueError, match=r"train.csv:3: label 'Positive' is not one of "
                                         r"\['negative', 'positive'\] "
                                         r"\(did you mean 'positive'\?\)"):
        load_custom_split(path, "text", "label", labels=["negative", "positive"])


def test_label_outside_given_set_names_file_and_line(tmp_path):
    path = _write(tmp_path / "dev.jsonl", '{"t": "a", "l": "x"}\n{"t": "b", "l": "z"}\n')
    with pytest.raises(ValueError, match=r"dev.jsonl:2: label 'z' is not one of \['x', 'y'\]"):
        load_custom_split(path, "t", "l", labels=["x", "y"])


def test_missing_label_on_a_train_row(tmp_path):
    path = _write(tmp_path / "train.csv", "text,label\na,1\n\"multi\nline\",\nc,0\n")
    with pytest.raises(ValueError, match=r"train.csv:3: missing label in column 'label'"):
        load_custom_split(path, "text", "label")


def test_missing_column_lists_the_header(tmp_path):
    path = _write(tmp_path / "train.csv", "sentence,label\na,1\n")
    with pytest.raises(ValueError,
                       match=r"no column 'text'; the header is \['sentence', 'label'\]"):
        load_custom_split(path, "text", "label")
    jpath = _write(tmp_path / "train.jsonl", '{"sentence": "a"}\n')
    with pytest.raises(ValueError, match=r"train.jsonl:1: no field 'text'"):
        load_custom_split(jpath, "text")


def test_malformed_json_line(tmp_path):
    path = _write(tmp_path / "train.jsonl", '{"text": "a", "label": "1"}\n{"text": "b", \n')
    with pytest.raises(ValueError, match=r"train.jsonl:2: malformed JSON line"):
        load_custom_split(path, "text", "label")


def test_malformed_csv_row(tmp_path):
    path = _write(tmp_path / "train.csv", "text,label\na,1\nb,1,extra\n")
    with pytest.raises(ValueError, match=r"train.csv:3: malformed row: expected 2 columns"):
        load_custom_split(path, "text", "label")


def test_empty_files(tmp_path):
    with pytest.raises(ValueError, match=r"empty file"):
        load_custom_split(_write(tmp_path / "a.csv", ""), "text")
    with pytest.raises(ValueError, match=r"no examples"):
        load_custom_split(_write(tmp_path / "b.csv", "text,label\n"), "text", "label")
    with pytest.raises(ValueError, match=r"empty file"):
        load_custom_split(_write(tmp_path / "c.jsonl", "\n"), "text")


def test_unlabelled_test_file(tmp_path):
    path = _write(tmp_path / "test.csv", "id,text\n7,a\n9,b\n")
    examples = load_custom_split(path, "text", index_field="id")
    assert examples.labels is None and examples.indices == ["7", "9"]


def test_make_custom_task_and_load_split(tmp_path):
    _write(tmp_path / "train.csv", "text,label\na,b2\nb,a1\nc,b2\n")
    _write(tmp_path / "dev.tsv", "text\tlabel\nd\ta1\n")
    _write(tmp_path / "test.jsonl", '{"text": "e", "id": "x1"}\n')
    labels = read_custom_labels(str(tmp_path / "train.csv"), "label")
    assert labels == ("a1", "b2")
    task = make_custom_task(labels, "text", name="topics", index_field="id")
    assert task.submission_file("test") == "test_predictions.tsv"
    assert task.submission_labels == ("a1", "b2")
    assert task.metrics == ("accuracy", "macro_f1") and task.primary_metric == "accuracy"
    assert task.eval_splits == ("dev",) and not task.is_regression
    with pytest.raises(ValueError, match=r"no column 'id'"):
        load_split(task, "train", str(tmp_path))  # The index column is missing in train.
    task = make_custom_task(labels, "text", name="topics")
    train = load_split(task, "train", str(tmp_path))
    np.testing.assert_array_equal(train.labels, [1, 0, 1])
    dev = load_split(task, "validation", str(tmp_path))
    assert dev.labels.tolist() == [0]
    test = load_split(task, "test", str(tmp_path))
    assert test.labels is None and test.texts_a == ["e"]


def test_make_custom_task_rejects_bad_label_sets():
    with pytest.raises(ValueError, match="at least 2"):
        make_custom_task(["only"], "text")
    with pytest.raises(ValueError, match="distinct"):
        make_custom_task(["a", "a "], "text")
    with pytest.raises(ValueError, match="one or two column names"):
        make_custom_task(["a", "b"], "x,y,z")


def test_many_classes(tmp_path):
    lines = ["text,label"] + [f"t{i},{i}" for i in range(157)]
    path = _write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    examples = load_custom_split(path, "text", "label")
    assert examples.label_names == tuple(str(i) for i in range(157))
    assert examples.labels.tolist() == list(range(157))
