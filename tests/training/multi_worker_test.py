"""Two real worker processes on localhost: they start, agree, and write once.

`run_classifier.py --distribution_strategy=multi_worker_mirrored` on a
two-worker TF_CONFIG cluster (tiny encoder, tiny RTE, a few steps), as a
user runs it across machines.
"""

import json
import os
import re
import time

import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.tasks import glue_files
from bert_adapters.data import get_task, load_split
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.training import trainer
from cluster import describe, run_workers, start_workers, wait_all
from tiny_runs import write_tiny_encoder, write_tiny_rte
from resume import run_weights

# Generous: two processes importing TensorFlow on two shared cores.
TIMEOUT = 240


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_cluster")
    return {"encoder": write_tiny_encoder(root / "encoder", max_sequence_length=64),
            "data": write_tiny_rte(root / "RTE", num_train=48, num_dev=20, num_test=12)}


def _flags(tiny, out, *extra):
    return [f"--output_dir={out}", "--task_name=rte", f"--data_dir={tiny['data']}",
            f"--encoder={tiny['encoder']}", "--adapter_size=4", "--max_seq_length=32",
            "--train_batch_size=8", "--eval_batch_size=8", "--learning_rate=1e-2",
            "--distribution_strategy=multi_worker_mirrored", *extra]


def _logged_digests(workers):
    found = [re.findall(r"Trained weights: sha256:([0-9a-f]{64})", w.log) for w in workers]
    assert all(len(d) == 1 for d in found), describe(workers)
    return [d[0] for d in found]


def _recorded_config(output_dir, **overrides):
    with open(os.path.join(output_dir, "run_config.json")) as f:
        settings = json.load(f)["settings"]
    return ClassifierConfig.from_json({**settings, **overrides})


def _test_results(path):
    with open(path) as f:
        rows = [line.split("\t") for line in f.read().splitlines()]
    return np.array(rows, dtype=np.float64)


def test_two_workers_train_agree_and_write_once(tiny, tmp_path):
    out = tmp_path / "run"
    workers = run_workers("run_classifier.py", _flags(
        tiny, out, "--do_train", "--do_eval", "--do_predict", "--max_train_steps=4",
        "--save_checkpoints_steps=2", "--iterations_per_loop=2"), str(tmp_path), TIMEOUT)
    assert [w.returncode for w in workers] == [0, 0], describe(workers)

    # The chief's outputs, complete and valid, written once.
    files = set(os.listdir(out))
    assert {"run_config.json", "params.json", "eval_results.json", "eval_results.txt",
            "RTE.tsv", "test_results.tsv", "task_artifact", "checkpoints", "logs"} <= files
    assert not [f for f in files if ".tmp-" in f]
    with open(out / "eval_results.json") as f:
        results = json.load(f)
    assert results["global_step"] == 4 and results["num_eval_examples"] == 20
    task = get_task("rte")
    test = load_split(task, "test", tiny["data"])
    assert glue_files.validate_submission(str(out / "RTE.tsv"), task, "test",
                                          test.indices) == 12
    assert sorted(os.listdir(out / "checkpoints")) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    # The other worker wrote only to its private directory, and removed it.
    assert os.listdir(tmp_path / "tmp1") == []

    # Both workers end with the weights the chief's artifact holds.
    artifact_weights = run_weights(out)
    assert _logged_digests(workers) == [trainer.weights_digest(artifact_weights)] * 2

    # Two workers train as two replicas in one process: the global batch of 8
    # is split 4 + 4 and the loss is normalised by the global batch.
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) >= 2, "conftest splits the CPU into two logical devices"
    config = _recorded_config(out, do_eval=False, do_predict=False)
    trainer.run(config, str(tmp_path / "one_process"),
                strategy=tf.distribute.MirroredStrategy([d.name for d in cpus[:2]]))
    local = run_weights(tmp_path / "one_process")
    assert sorted(local) == sorted(artifact_weights)
    for name in local:
        np.testing.assert_allclose(artifact_weights[name], local[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)

    # The artifact reloaded on one device gives the chief's results, example by example.
    again = trainer.run(
        ClassifierConfig(task_name="rte", data_dir=tiny["data"], task_dir=str(out),
                         max_seq_length=32, eval_batch_size=8, do_eval=True, do_predict=True),
        str(tmp_path / "reloaded"), strategy=tf.distribute.OneDeviceStrategy(cpus[0].name))
    for key in ("accuracy", "eval_loss"):
        assert again[key] == pytest.approx(results[key], abs=1e-5)
    np.testing.assert_allclose(_test_results(tmp_path / "reloaded" / "test_results.tsv"),
                               _test_results(out / "test_results.tsv"), atol=1e-5)


def test_an_error_on_one_worker_stops_every_worker_with_its_message(tiny, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "not_on_this_machine"
    workers = run_workers("run_classifier.py", _flags(tiny, out, "--do_train", "--do_eval",
                                                      "--max_train_steps=2"),
                          str(tmp_path), TIMEOUT, worker_flags={1: [f"--data_dir={missing}"]})
    assert [w.returncode for w in workers] == [2, 2], describe(workers)
    chief, other = workers
    assert "worker 1 of 2 stopped the job" in chief.log and str(missing) in chief.log
    assert "Traceback" not in chief.log + other.log
    assert str(missing) in other.log
    assert not (out / "run_config.json").exists() and not (out / "eval_results.json").exists()


def test_a_worker_alone_gives_up_after_the_bounded_wait(tiny, tmp_path):
    workers = start_workers("run_classifier.py", _flags(tiny, tmp_path / "run", "--do_train"),
                            str(tmp_path), only=[0],
                            env={"BERT_ADAPTERS_WORKER_WAIT_SECONDS": "3"})
    assert wait_all(workers, TIMEOUT), describe(workers)
    assert workers[0].returncode != 0
    assert "did not all start within 3 s" in workers[0].log
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_job_restarted_after_a_killed_worker_resumes_from_the_last_checkpoint(
        tiny, tmp_path):
    out = tmp_path / "run"
    flags = _flags(tiny, out, "--do_train", "--num_train_epochs=4", "--save_checkpoints_steps=4",
                   "--iterations_per_loop=2")   # 24 steps
    workers = start_workers("run_classifier.py", flags, str(tmp_path))
    # Kill the second worker once the chief has written a checkpoint.
    deadline = time.monotonic() + TIMEOUT
    while not (out / "checkpoints" / "ckpt-8.index").exists():
        assert time.monotonic() < deadline and workers[0].process.poll() is None, \
            describe(workers)
        time.sleep(0.2)
    workers[1].kill()
    assert wait_all(workers, TIMEOUT), describe(workers)
    chief = workers[0]
    assert chief.returncode == 2, describe(workers)
    assert "lost the other workers" in chief.log and "restart every worker" in chief.log
    assert not (out / "task_artifact").exists()

    again = run_workers("run_classifier.py", flags, str(tmp_path / "restart"), TIMEOUT)
    assert [w.returncode for w in again] == [0, 0], describe(again)
    assert re.search(r"Resumed from .*ckpt-(8|12|16|20) at step", again[0].log)
    # Same weights as the same job never interrupted (two replicas, one process).
    cpus = tf.config.list_logical_devices("CPU")
    trainer.run(_recorded_config(out), str(tmp_path / "uninterrupted"),
                strategy=tf.distribute.MirroredStrategy([d.name for d in cpus[:2]]))
    expected = run_weights(tmp_path / "uninterrupted")
    for name, value in run_weights(out).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_a_sweep_over_several_workers_is_refused_with_the_way_to_do_it(tiny, tmp_path):
    hparams = tmp_path / "sweep.py"
    hparams.write_text('def get_config():\n    return {"max_train_steps": 1}\n\n\n'
                       'def get_sweep():\n    return [{"seed": 0}]\n')
    workers = run_workers("run_classifier.py", _flags(tiny, tmp_path / "sweep",
                                                      f"--hparams={hparams}"),
                          str(tmp_path), TIMEOUT)
    assert [w.returncode for w in workers] == [2, 2], describe(workers)
    assert all("run it without --hparams" in w.log for w in workers)


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(tiny, tmp_path):
    cpus = tf.config.list_logical_devices("CPU")
    config = ClassifierConfig(task_name="rte", data_dir=tiny["data"], encoder=tiny["encoder"],
                              adapter_size=4, max_seq_length=32, train_batch_size=7,
                              do_train=True)
    with pytest.raises(ValueError, match="--train_batch_size=7 does not split evenly over the 2"):
        trainer.run(config, str(tmp_path / "run"),
                    strategy=tf.distribute.MirroredStrategy([d.name for d in cpus[:2]]))
    assert not (tmp_path / "run").exists()
