"""The task registry: names, fields, splits."""

import pytest

from bert_adapters.data import GLUE_TASKS, get_task, tasks_predicted_by


@pytest.mark.parametrize("alias,name", [
    ("rte", "RTE"), ("RTE", "RTE"), ("sst2", "SST-2"), ("SST-2", "SST-2"), ("sst_2", "SST-2"),
    ("sts-b", "STS-B"), ("stsb", "STS-B"), ("mnli", "MNLI"), ("cola", "CoLA"),
    ("ax", "AX"), ("diagnostic", "AX"), ("Diagnostic", "AX")])
def test_get_task_aliases(alias, name):
    assert get_task(alias).name == name
    assert get_task(get_task(alias)) is get_task(alias)


def test_unknown_task_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown task 'snli'.*CoLA, SST-2, MRPC, STS-B, QQP, "
                                         r"MNLI, QNLI, RTE, WNLI, AX"):
        get_task("snli")


def test_primary_metrics_and_submission_files():
    primary = {t.name: t.primary_metric for t in GLUE_TASKS}
    assert primary == {"CoLA": "matthews_corrcoef", "SST-2": "accuracy", "MRPC": "f1",
                       "STS-B": "pearson", "QQP": "f1", "MNLI": "accuracy",
                       "QNLI": "accuracy", "RTE": "accuracy", "WNLI": "accuracy",
                       "AX": "matthews_corrcoef"}
    files = sorted(f for t in GLUE_TASKS for f in t.test_files.values())
    assert files == sorted(["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv",
                            "MNLI-m.tsv", "MNLI-mm.tsv", "QNLI.tsv", "RTE.tsv", "WNLI.tsv",
                            "AX.tsv"])
    assert {t.tfds_name for t in GLUE_TASKS} == {
        "glue/cola", "glue/sst2", "glue/mrpc", "glue/stsb", "glue/qqp", "glue/mnli",
        "glue/qnli", "glue/rte", "glue/wnli", "glue/ax"}


def test_mnli_splits_and_ax():
    mnli, ax = get_task("mnli"), get_task("ax")
    assert mnli.eval_splits == ("dev_matched", "dev_mismatched")
    assert mnli.submission_file("test_mismatched") == "MNLI-mm.tsv"
    assert mnli.resolve_split("validation_matched") == "dev_matched"
    assert ax.label_names == mnli.label_names and ax.predicted_by == "MNLI"
    assert ax.train_split is None and ax.splits == ("test",)
    assert tasks_predicted_by("mnli") == (ax,)
    with pytest.raises(ValueError, match=r"has no split 'dev'"):
        mnli.resolve_split("dev")


def test_label_sets_and_tfds_names_map_by_name():
    for task in GLUE_TASKS:
        if task.is_regression:
            assert task.name == "STS-B" and task.num_outputs == 1
            continue
        # Every TFDS label name maps onto a distinct task label.
        assert sorted(task.tfds_labels.values()) == sorted(task.label_names)
        assert len(task.submission_labels) == task.num_outputs
    assert get_task("cola").tfds_labels["acceptable"] == "1"
    assert get_task("wnli").tfds_labels["entailment"] == "1"
    assert get_task("mnli").label_names == ("contradiction", "entailment", "neutral")


def test_registry_entries_are_read_only():
    with pytest.raises(TypeError):
        get_task("rte").test_files["test"] = "x.tsv"
    with pytest.raises(AttributeError):
        get_task("rte").name = "x"
