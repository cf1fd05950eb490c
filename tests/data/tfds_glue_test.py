"""TFDS GLUE reader, through `tfds.testing.mock_data` (no network, no prepared data)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bert_adapters.data import get_task, load_split, load_tfds_split

# Fake TFDS examples per (config, TFDS split): texts, TFDS label indices, idx.
FAKE = {
    # TFDS MNLI order: entailment, neutral, contradiction.
    ("mnli", "validation_matched"): (("p0", "p1", "p2"), ("h0", "h1", "h2"), (0, 1, 2), (7, 8, 9)),
    ("mnli", "test_mismatched"): (("p0", "p1"), ("h0", "h1"), (-1, -1), (0, 1)),
    ("ax", "test"): (("p0",), ("h0",), (-1,), (0,)),
    # TFDS cola: unacceptable, acceptable.
    ("cola", "train"): (("bad .", "good ."), None, (0, 1), (0, 1)),
    # TFDS qnli: entailment, not_entailment.
    ("qnli", "validation"): (("q0", "q1"), ("s0", "s1"), (1, 0), (0, 1)),
    ("stsb", "validation"): (("a", "b"), ("c", "d"), (4.5, 0.25), (0, 1)),
    ("stsb", "test"): (("a",), ("c",), (-1.0,), (0,)),
}


def _fake_as_dataset(builder, split, *args, **kwargs):
    config = builder.builder_config.name
    texts_a, texts_b, labels, idx = FAKE[(config, str(split))]
    names = list(builder.info.features)  # e.g. hypothesis, idx, label, premise
    text_names = [n for n in names if n not in ("idx", "label")]
    text_features = get_task(config).tfds_text_features
    assert sorted(text_names) == sorted(text_features)
    columns = {text_features[0]: list(texts_a), "idx": np.asarray(idx, np.int32)}
    if texts_b is not None:
        columns[text_features[1]] = list(texts_b)
    label_dtype = np.float32 if config == "stsb" else np.int64
    columns["label"] = np.asarray(labels, label_dtype)
    return tf.data.Dataset.from_tensor_slices(columns)


@pytest.fixture
def fake_tfds():
    with tfds.testing.mock_data(as_dataset_fn=_fake_as_dataset):
        yield


def test_mnli_labels_mapped_by_name(fake_tfds):
    task = get_task("mnli")
    dev = load_tfds_split(task, "dev_matched")
    # TFDS [entailment, neutral, contradiction] -> task [contradiction, entailment, neutral].
    assert [task.label_names[i] for i in dev.labels] == ["entailment", "neutral",
                                                         "contradiction"]
    assert dev.labels.tolist() == [1, 2, 0]
    assert dev.labels.dtype == np.int64
    assert dev.texts_a == ["p0", "p1", "p2"] and dev.texts_b == ["h0", "h1", "h2"]
    assert dev.indices == ["7", "8", "9"]
    assert dev.source == "tfds:glue/mnli/validation_matched"


def test_test_split_labels_are_none(fake_tfds):
    test = load_tfds_split("MNLI", "test_mismatched")
    assert test.labels is None and test.indices == ["0", "1"]
    ax = load_split("ax", "test")  # No data_dir: TFDS.
    assert ax.labels is None and ax.texts_b == ["h0"]


def test_binary_tasks_map_to_glue_strings(fake_tfds):
    cola = get_task("cola")
    train = load_tfds_split(cola, "train")
    assert train.texts_b is None
    assert [cola.label_names[i] for i in train.labels] == ["0", "1"]
    qnli = get_task("qnli")
    dev = load_tfds_split(qnli, "validation")
    assert [qnli.label_names[i] for i in dev.labels] == ["not_entailment", "entailment"]


def test_stsb_regression_labels(fake_tfds):
    dev = load_tfds_split("sts-b", "dev")
    assert dev.labels.dtype == np.float32
    np.testing.assert_allclose(dev.labels, [4.5, 0.25])
    assert load_tfds_split("stsb", "test").labels is None


def test_random_mock_data_round_trip():
    # The default random mock: every task's splits read, labels within range.
    with tfds.testing.mock_data(num_examples=4):
        for name, split in [("mrpc", "dev"), ("sst2", "train"), ("wnli", "test"),
                            ("mnli", "dev_mismatched")]:
            task = get_task(name)
            examples = load_tfds_split(task, split)
            assert examples.num_examples == 4
            if task.is_test_split(split):
                assert examples.labels is None
            else:
                assert examples.labels.min() >= 0
                assert examples.labels.max() < task.num_outputs


def test_not_prepared_offline_error_names_flags(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data_dir.*--tfds_data_dir"):
        load_tfds_split("rte", "dev", tfds_data_dir=str(tmp_path))
