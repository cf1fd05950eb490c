"""Strategies from flags, TF_CONFIG checks, and what workers compare (one process here).

Real multi-worker runs are in multi_worker_test.py; these are the parts that
need no second process.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.training import distribution


@pytest.mark.parametrize("tf_config,message", [
    ("{not json", "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["localhost:1"]}}), "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}),
     "task worker:1 is not in the cluster"),
    (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "'cluster' must map"),
])
def test_a_malformed_tf_config_is_named_before_tensorflow_starts(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribution.get_strategy("multi_worker_mirrored")


def test_a_bad_worker_wait_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    monkeypatch.setenv(distribution.WORKER_WAIT_ENV, "soon")
    with pytest.raises(ValueError, match=distribution.WORKER_WAIT_ENV):
        distribution.get_strategy("multi_worker_mirrored")


def test_unknown_strategy_and_too_many_gpus():
    with pytest.raises(ValueError, match="Unknown distribution_strategy 'horovod'"):
        distribution.get_strategy("horovod")
    with pytest.raises(ValueError, match="num_gpus=64"):
        distribution.get_strategy("mirrored", num_gpus=64)


def test_one_process_is_its_own_chief_and_agrees_with_itself():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert distribution.is_chief(strategy) and not distribution.is_multi_worker(strategy)
    assert distribution.worker_count(strategy) == 1 and distribution.worker_index(strategy) == 0
    assert distribution.agree(strategy, note="abc") == ["abc"]
    with pytest.raises(FileNotFoundError, match="gone.tsv"):
        distribution.agree(strategy, FileNotFoundError("gone.tsv"))


def test_replicas_exchange_text_in_replica_order():
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) >= 2, "conftest splits the CPU into two logical devices"
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
    # One process: each replica's row holds the same text (a worker's note).
    assert distribution._all_gather_text(strategy, "é worker") == ["é worker"]


def test_digests_cover_values_dtypes_and_order():
    a, b = np.arange(6, dtype=np.int32), np.arange(6, dtype=np.int64)
    assert distribution.digest_arrays({"x": 1}, a) == distribution.digest_arrays({"x": 1}, a)
    assert distribution.digest_arrays(a) != distribution.digest_arrays(b)
    assert distribution.digest_arrays(a) != distribution.digest_arrays(a.reshape(2, 3))
    assert distribution.digest_arrays("k", a) != distribution.digest_arrays(a, "k")
