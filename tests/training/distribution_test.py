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


# === Replicas on one CPU ===
def _config(**fields):
    from bert_adapters.tasks.classification import ClassifierConfig

    return ClassifierConfig(**{"task_name": "RTE", "encoder": "x", "do_train": True,
                               "do_eval": True, "cpu_replicas": "auto", **fields})


def test_auto_cpu_replicas_take_a_core_each_where_they_can(monkeypatch):
    monkeypatch.setattr(distribution, "_devices_made", lambda: False)
    monkeypatch.setattr(distribution, "cpu_cores", lambda: 2)
    assert distribution.cpu_replicas_for(_config()) == 2
    assert distribution.cpu_replicas_for(_config(cpu_replicas=3)) == 3   # Asked: as asked.
    # Batches that do not split evenly, in the run or in a sweep's other trials.
    assert distribution.cpu_replicas_for(_config(train_batch_size=31)) == 1
    assert distribution.cpu_replicas_for(_config(eval_batch_size=9)) == 1
    assert distribution.cpu_replicas_for(_config(do_eval=False, eval_batch_size=9)) == 2
    assert distribution.cpu_replicas_for(_config(), also_for=[_config(train_batch_size=5)]) == 1
    # Runs that train every weight (or whole layers) keep one device.
    assert distribution.cpu_replicas_for(_config(tuning="layer_norm")) == 2
    assert distribution.cpu_replicas_for(_config(tuning="full")) == 1
    assert distribution.cpu_replicas_for(_config(tuning="top_k", num_tuned_layers=2)) == 1
    assert distribution.cpu_replicas_for(_config(), also_for=[_config(tuning="full")]) == 1
    # Another strategy, a large CPU (unmeasured), one core.
    assert distribution.cpu_replicas_for(_config(distribution_strategy="mirrored")) == 1
    for cores in (1, distribution.AUTO_CPU_REPLICAS_MAX_CORES + 1):
        monkeypatch.setattr(distribution, "cpu_cores", lambda cores=cores: cores)
        assert distribution.cpu_replicas_for(_config()) == 1
    # TensorFlow's devices already made (this test process): one device.
    monkeypatch.undo()
    monkeypatch.setattr(distribution, "cpu_cores", lambda: 2)
    assert distribution.cpu_replicas_for(_config()) == 1


def test_cpu_replicas_make_a_mirrored_strategy_over_the_split_cpu():
    # conftest split this process's CPU in two before TensorFlow started: kept.
    strategy = distribution.get_strategy("one_device", cpu_replicas=2)
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 2
    with pytest.raises(ValueError, match="already made this process's devices"):
        distribution.get_strategy("one_device", cpu_replicas=3)
    with pytest.raises(ValueError, match="not tpu"):
        distribution.get_strategy("tpu", cpu_replicas=2)
    with pytest.raises(ValueError, match="positive number or auto"):
        distribution.split_cpu(0)


@pytest.mark.parametrize("value", ["0", "-2", "two", "2.5", "", None])
def test_a_bad_cpu_replicas_is_named(value):
    with pytest.raises(ValueError, match="--cpu_replicas="):
        _config(cpu_replicas=value)
    assert _config(cpu_replicas="3").cpu_replicas == 3


SPLIT_IN_A_FRESH_PROCESS = """
import json, sys
import bert_adapters
import tensorflow as tf
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import distribution
distribution.cpu_cores = lambda: 2
config = ClassifierConfig(task_name="RTE", encoder="x", do_train=True, cpu_replicas=sys.argv[1])
strategy = distribution.strategy_from_config(config)
print(json.dumps([strategy.num_replicas_in_sync, len(tf.config.list_logical_devices("CPU")),
                  tf.config.threading.get_intra_op_parallelism_threads()]))
"""


def test_a_fresh_process_splits_its_cpu_before_tensorflow_starts():
    import subprocess
    import sys

    from conftest import REPO_ROOT

    def run(value):
        done = subprocess.run([sys.executable, "-c", SPLIT_IN_A_FRESH_PROCESS, value],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    # Two replicas on two devices, one thread per op; `1`: TensorFlow's own
    # devices and threads (0: as many as it likes).
    assert run("auto") == [2, 2, 1]
    assert run("1") == [1, 1, 0]
