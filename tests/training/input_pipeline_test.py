import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.training import input_pipeline


def test_train_rows_are_epoch_permutations_and_deterministic():
    rows = input_pipeline.train_index_matrix(10, 3, num_steps=7, seed=5)
    assert rows.shape == (7, 3)
    # 3 full batches per epoch (one example dropped), each epoch a permutation.
    for epoch in range(2):
        chunk = rows[3 * epoch:3 * epoch + 3].reshape(-1)
        assert len(set(chunk)) == 9 and set(chunk) <= set(range(10))
    np.testing.assert_array_equal(rows, input_pipeline.train_index_matrix(10, 3, 7, seed=5))
    assert not np.array_equal(rows, input_pipeline.train_index_matrix(10, 3, 7, seed=6))
    # A resumed stream is the tail of the uninterrupted one.
    np.testing.assert_array_equal(input_pipeline.train_index_matrix(10, 3, 7, seed=5)[4:],
                                  rows[4:])


def test_grouped_rows_pad_less_and_cover_each_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 128, 640)
    plain = input_pipeline.train_index_matrix(640, 32, 20, seed=1)
    grouped = input_pipeline.train_index_matrix(640, 32, 20, seed=1, lengths=lengths,
                                                group_size=5)
    assert sorted(grouped[:20].reshape(-1)) == list(range(640))
    assert lengths[grouped].max(1).mean() < 0.8 * lengths[plain].max(1).mean()


def test_too_small_training_set():
    with pytest.raises(ValueError, match="larger than the training set"):
        input_pipeline.train_index_matrix(5, 8, 1, seed=0)


@pytest.mark.parametrize("lengths", [None, np.array([5, 1, 4, 2, 3, 9, 7])])
def test_eval_rows_cover_every_example_and_scatter_back(lengths):
    rows = input_pipeline.eval_index_matrix(7, 3, lengths)
    assert rows.shape == (3, 3) and (rows == -1).sum() == 2
    outputs = np.where(rows.reshape(-1) >= 0, rows.reshape(-1) * 10, -1)[:, None]
    np.testing.assert_array_equal(input_pipeline.scatter_outputs(rows, outputs)[:, 0],
                                  np.arange(7) * 10)


def test_dataset_trims_padding_and_flags_valid_rows():
    features = {"input_word_ids": np.ones((5, 16), "int32"),
                "input_mask": np.zeros((5, 16), "int32"),
                "input_type_ids": np.zeros((5, 16), "int32")}
    for i, n in enumerate([3, 9, 2, 4, 1]):
        features["input_mask"][i, :n] = 1
    rows = input_pipeline.eval_index_matrix(5, 4)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    batches = list(input_pipeline.make_dataset(strategy, features, np.arange(5), rows))
    (inputs, labels, valid), (inputs2, labels2, valid2) = batches
    assert inputs["input_mask"].shape == (4, 16)  # longest 9 -> 16 (multiple of 8)
    assert inputs2["input_mask"].shape == (4, 8)  # longest 1 -> 8
    assert valid2.numpy().tolist() == [1, 0, 0, 0]
    static = list(input_pipeline.make_dataset(strategy, features, np.arange(5), rows,
                                              static_shapes=True))
    assert static[1][0]["input_mask"].shape == (4, 16)


def test_no_dataset_of_a_distributed_iterator_autotunes():
    # An autotuned iterator's destructor waits for its model thread, which
    # sleeps up to a minute: every input of a step (our datasets and those
    # tf.distribute builds per device) runs untuned.
    features = {name: np.ones((8, 16), "int32") for name in
                ("input_word_ids", "input_mask", "input_type_ids")}
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dataset = input_pipeline.make_dataset(strategy, features, np.arange(8),
                                          input_pipeline.eval_index_matrix(8, 4))
    iterator = iter(dataset)
    # Private structure of TF 2.21's distributed iterators: if it moves,
    # this test says so (and the untuning has to be found again).
    workers = iterator._iterators
    device_iterators = [i for w in workers for i in w._iterator._device_iterators]
    assert workers and device_iterators
    for worker in workers:
        assert worker._dataset.options().autotune.enabled is False
    for device_iterator in device_iterators:
        assert device_iterator._dataset.options().autotune.enabled is False
    assert next(iterator)[0]["input_mask"].shape == (4, 16)


class _DatasetFunction:
    """Stands in for a strategy of `num_replicas`: hands back the dataset function."""

    def __init__(self, num_replicas):
        self.num_replicas_in_sync = num_replicas

    def distribute_datasets_from_function(self, dataset_fn):
        return dataset_fn


@pytest.mark.parametrize("static_shapes", [False, True])
def test_each_worker_feeds_its_replicas_share_and_every_example_is_seen_once(static_shapes):
    # Two workers with two replicas each; 11 eval examples in global batches of 8.
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 17, 11)
    features = {"input_word_ids": np.tile(np.arange(11)[:, None], (1, 16)).astype("int32"),
                "input_mask": (np.arange(16) < lengths[:, None]).astype("int32"),
                "input_type_ids": np.zeros((11, 16), "int32")}
    rows = input_pipeline.eval_index_matrix(11, 8, lengths)
    dataset_fn = input_pipeline.make_dataset(_DatasetFunction(4), features, np.arange(11) * 10,
                                             rows, static_shapes=static_shapes)
    per_worker = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=4)
        dataset = dataset_fn(context)
        if static_shapes:  # TPUs: every shape known before the first batch.
            assert all(s.shape.is_fully_defined() for s in tf.nest.flatten(dataset.element_spec))
        per_worker.append(list(dataset))   # element k feeds local replica k % 2 of step k // 2
    seen = []
    for step in range(len(rows)):
        # Replica r (worker r // 2, local replica r % 2) gets columns 2r, 2r + 1 of the row.
        replicas = [per_worker[r // 2][2 * step + r % 2] for r in range(4)]
        assert len({int(x[0]["input_mask"].shape[1]) for x in replicas}) == 1
        labels = np.concatenate([x[1].numpy() for x in replicas])
        valid = np.concatenate([x[2].numpy() for x in replicas]).astype(bool)
        np.testing.assert_array_equal(valid, rows[step] >= 0)
        np.testing.assert_array_equal(labels[valid], rows[step][valid] * 10)
        seen += list(rows[step][valid])
    assert sorted(seen) == list(range(11))
