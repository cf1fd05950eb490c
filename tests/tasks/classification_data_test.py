"""A classification run's data on its own: which task, which splits, which files.

What `run_classifier.py` reads for a given set of flags, without training.
"""

import json
import os

import numpy as np
import pytest

from bert_adapters.tasks import classification_data
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.data.tokenization import BertTokenizer
from checkpoint_writers import VOCAB
from tiny_runs import write_tiny_rte


def _config(**fields):
    return ClassifierConfig(**{"task_name": "RTE", **fields})


def _write_mnli(root):
    """MNLI (matched and mismatched, header-named columns) and the diagnostic set beside it."""
    folder = root / "MNLI"
    folder.mkdir(parents=True)
    labels = ("contradiction", "entailment", "neutral")
    for name, count in (("train", 6), ("dev_matched", 3), ("dev_mismatched", 4)):
        rows = ["index\tpromptID\tsentence1\tsentence2\tgold_label"]
        rows += [f"{i}\t{i}\tw{i} w1\tw{i} w2\t{labels[i % 3]}" for i in range(count)]
        (folder / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    for name, count in (("test_matched", 2), ("test_mismatched", 3)):
        rows = ["index\tsentence1\tsentence2"] + [f"{i}\tw1\tw2" for i in range(count)]
        (folder / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    (root / "diagnostic").mkdir()
    rows = ["index\tsentence1\tsentence2"] + [f"{i}\tw3\tw4" for i in range(5)]
    (root / "diagnostic" / "diagnostic.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize("flags, splits", [
    (dict(do_train=True), ["train"]),
    (dict(do_eval=True), ["dev_matched", "dev_mismatched"]),
    (dict(do_predict=True), ["test_matched", "test_mismatched", "AX:test"]),
    (dict(do_train=True, do_eval=True, do_predict=True),
     ["train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched", "AX:test"]),
])
def test_a_run_reads_only_the_splits_its_flags_need(tmp_path, flags, splits):
    folder = _write_mnli(tmp_path)
    config = _config(task_name="mnli", data_dir=str(folder), **flags)
    task = classification_data.resolve_task(config)
    loaded = classification_data.load_splits(task, config)
    assert list(loaded) == splits
    sizes = {"train": 6, "dev_matched": 3, "dev_mismatched": 4, "test_matched": 2,
             "test_mismatched": 3, "AX:test": 5}
    assert {k: v.num_examples for k, v in loaded.items()} == {k: sizes[k] for k in splits}
    if flags.get("do_predict"):
        assert classification_data.prediction_files(task, loaded) == {
            "test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv",
            "AX:test": "AX.tsv"}


def test_diagnostic_set_missing_is_skipped_with_a_warning(tmp_path, caplog):
    folder = _write_mnli(tmp_path)
    os.rename(tmp_path / "diagnostic", tmp_path / "elsewhere")
    config = _config(task_name="MNLI", data_dir=str(folder), do_predict=True)
    loaded = classification_data.load_splits(classification_data.resolve_task(config), config)
    assert "AX:test" not in loaded
    assert "No AX data next to" in caplog.text and "AX.tsv is not predicted" in caplog.text


def test_features_and_labels_of_a_loaded_run(tmp_path):
    data = write_tiny_rte(tmp_path / "RTE", num_train=6, num_dev=4, num_test=3)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizer(str(vocab), lower_case=True, max_seq_length=16)
    kind = _config(data_dir=data, do_train=True, do_eval=True, do_predict=True).task_kind()
    splits = kind.load_splits(tokenizer)
    assert sorted(splits) == ["dev", "test", "train"]
    train = splits["train"]
    assert train.num_rows == 6 and sorted(train.features) == [
        "input_mask", "input_type_ids", "input_word_ids"]
    assert all(f.shape == (6, 16) and f.dtype == np.int32 for f in train.features.values())
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1]  # entailment, not_entailment, ...
    assert (train.features["input_word_ids"][:, 0] == VOCAB.index("[CLS]")).all()
    assert splits["test"].labels is None and splits["test"].data.indices == ["0", "1", "2"]
    assert kind.predict_splits(splits) == ["test"]


@pytest.mark.parametrize("flags, message", [
    (dict(task_name="custom", text_fields=None), "needs --text_fields"),
    (dict(task_name="custom", text_fields=("text",)), "needs --train_file"),
])
def test_custom_task_needs_its_columns_and_labels(flags, message):
    with pytest.raises(ValueError, match=message):
        classification_data.resolve_task(_config(**flags))


def test_custom_task_labels_from_the_file_or_the_artifact(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": f"w{i}", "label": label}) + "\n"
                             for i, label in enumerate(["b", "a", "c", "a"])))
    config = _config(task_name="custom", text_fields=("text",), train_file=str(train),
                     do_train=True)
    assert classification_data.resolve_task(config).label_names == ("a", "b", "c")
    reload = _config(task_name="custom", text_fields=("text",), do_eval=True)
    task = classification_data.resolve_task(reload, {"label_names": ["x", "y"]})
    assert task.label_names == ("x", "y")
    with pytest.raises(ValueError, match="needs the dev split; pass --dev_file"):
        classification_data.load_splits(task, reload)


def test_an_empty_split_is_an_error(tmp_path):
    data = write_tiny_rte(tmp_path / "RTE", num_dev=0)
    config = _config(data_dir=data, do_eval=True)
    with pytest.raises(ValueError, match=r"RTE/dev\.tsv: no examples"):
        classification_data.load_splits(classification_data.resolve_task(config), config)
