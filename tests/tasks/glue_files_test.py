"""GLUE submission files: format per task, order, and the validator."""

import numpy as np
import pytest

from bert_adapters.data import get_task, load_glue_split, make_custom_task
from bert_adapters.tasks.glue_files import (submission_path, validate_submission,
                                      write_submission)
from conftest import require_data


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_binary_task_writes_0_1_in_given_order(tmp_path):
    path = submission_path(str(tmp_path), "mrpc", "test")
    assert path.endswith("/MRPC.tsv")
    write_submission(path, "mrpc", "test", ["0", "1", "2"], np.array([1, 0, 1]))
    assert _read(path) == "index\tprediction\n0\t1\n1\t0\n2\t1\n"
    assert validate_submission(path, "mrpc", "test", ["0", "1", "2"]) == 3


@pytest.mark.parametrize("name,split,file_name", [
    ("mnli", "test_matched", "MNLI-m.tsv"), ("mnli", "test_mismatched", "MNLI-mm.tsv"),
    ("ax", "test", "AX.tsv")])
def test_nli_label_strings(tmp_path, name, split, file_name):
    task = get_task(name)
    path = submission_path(str(tmp_path), task, split)
    assert path.endswith("/" + file_name)
    # Label indices in the task's (BERT's) order: contradiction, entailment, neutral.
    write_submission(path, task, split, [0, 1, 2], [1, 2, 0])
    assert _read(path) == ("index\tprediction\n0\tentailment\n1\tneutral\n"
                           "2\tcontradiction\n")
    validate_submission(path, task, split, [0, 1, 2])


def test_rte_and_qnli_label_strings(tmp_path):
    for name in ("rte", "qnli"):
        path = str(tmp_path / f"{name}.tsv")
        write_submission(path, name, "test", [5, 6], [1, 0])
        assert _read(path).splitlines()[1:] == ["5\tnot_entailment", "6\tentailment"]


def test_stsb_scores_clipped_with_three_decimals(tmp_path):
    path = submission_path(str(tmp_path), "sts-b", "test")
    write_submission(path, "stsb", "test", [0, 1, 2, 3], np.array([-0.2, 2.34567, 5.7, 3.0]))
    assert _read(path) == "index\tprediction\n0\t0.000\n1\t2.346\n2\t5.000\n3\t3.000\n"
    validate_submission(path, "stsb", "test", ["0", "1", "2", "3"])


def test_custom_task_predictions_file(tmp_path):
    task = make_custom_task(["sports", "politics", "arts"], "text")
    path = submission_path(str(tmp_path), task, "test")
    assert path.endswith("/test_predictions.tsv")
    write_submission(path, task, "test", ["a", "b"], [2, 0])
    assert _read(path) == "index\tprediction\na\tarts\nb\tsports\n"


def test_write_rejects_bad_input(tmp_path):
    path = str(tmp_path / "RTE.tsv")
    with pytest.raises(ValueError, match="2 indices but 3 predictions"):
        write_submission(path, "rte", "test", [0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="not a label index"):
        write_submission(path, "rte", "test", [0, 1], [0, 2])
    with pytest.raises(ValueError, match="not a test split"):
        write_submission(path, "rte", "dev", [0, 1], [0, 1])
    with pytest.raises(ValueError, match="argmax"):
        write_submission(path, "rte", "test", [0, 1], np.zeros([2, 2]))


def _write_raw(tmp_path, text):
    path = tmp_path / "sub.tsv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_validator_rejects_wrong_header(tmp_path):
    path = _write_raw(tmp_path, "id\tlabel\n0\t1\n")
    with pytest.raises(ValueError, match=r"sub.tsv:1: header must be 'index\\tprediction', "
                                         r"found 'id\\tlabel'"):
        validate_submission(path, "cola", "test", ["0"])


def test_validator_rejects_short_and_long_files(tmp_path):
    path = _write_raw(tmp_path, "index\tprediction\n0\t1\n1\t0\n")
    with pytest.raises(ValueError, match=r"short file: 2 prediction rows, expected 3"):
        validate_submission(path, "sst2", "test", ["0", "1", "2"])
    with pytest.raises(ValueError, match=r"long file: 2 prediction rows, expected 1"):
        validate_submission(path, "sst2", "test", ["0"])


def test_validator_rejects_misordered_index(tmp_path):
    path = _write_raw(tmp_path, "index\tprediction\n0\t1\n2\t0\n1\t0\n")
    with pytest.raises(ValueError, match=r"sub.tsv:3: index '2', expected '1'"):
        validate_submission(path, "wnli", "test", ["0", "1", "2"])


def test_validator_rejects_mislabelled_rows(tmp_path):
    path = _write_raw(tmp_path, "index\tprediction\n0\tentailment\n1\t1\n")
    with pytest.raises(ValueError, match=r"sub.tsv:3: prediction '1' is not a RTE label"):
        validate_submission(path, "rte", "test", ["0", "1"])
    # MNLI strings are not AX-invalid, but QNLI does not know `neutral`.
    path = _write_raw(tmp_path, "index\tprediction\n0\tneutral\n")
    validate_submission(path, "ax", "test", ["0"])
    with pytest.raises(ValueError, match=r"'neutral' is not a QNLI label"):
        validate_submission(path, "qnli", "test", ["0"])
    path = _write_raw(tmp_path, "index\tprediction\n0\t5.5\n")
    with pytest.raises(ValueError, match=r"sub.tsv:2: prediction '5.5' is not a score"):
        validate_submission(path, "stsb", "test", ["0"])
    path = _write_raw(tmp_path, "index\tprediction\n0 1\n")
    with pytest.raises(ValueError, match=r"sub.tsv:2: expected 2 tab-separated fields"):
        validate_submission(path, "cola", "test", ["0"])


def test_round_trip_on_the_real_rte_test_file(tmp_path):
    test = load_glue_split("rte", "test", str(require_data("glue")))
    predictions = np.arange(test.num_examples) % 2
    path = submission_path(str(tmp_path), "rte", "test")
    write_submission(path, "rte", "test", test.indices, predictions)
    assert validate_submission(path, "rte", "test", test.indices) == 3000
