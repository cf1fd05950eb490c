"""The strategy is made before anything touches TensorFlow's context, in every entry point.

MultiWorkerMirroredStrategy refuses a started context ("Collective ops must
be configured at program startup") even in a one-worker cluster, so each
entry point run under a one-worker TF_CONFIG fails if anything (a device
list, a seed, an op, an import) started TensorFlow first. A TPU must be
connected and initialised before any op: the `tpu` path is checked with
stand-ins for the Cloud TPU calls, recording whether the context had started.
(The two-worker test in multi_worker_test.py guards run_classifier.py.)
"""

import json
import subprocess
import sys

from cluster import describe, run_workers
from conftest import REPO_ROOT
from tiny_runs import TINY_RUN, WORDS, write_hparams, write_tiny_encoder, write_tiny_rte

TIMEOUT = 240


def _tiny_squad(path, num_questions=6, seed=0):
    """A SQuAD v1.1 file of tiny-vocabulary words, one paragraph per question."""
    import numpy as np

    rng = np.random.default_rng(seed)
    paragraphs = []
    for q in range(num_questions):
        words = list(rng.choice(WORDS, size=12))
        start = int(rng.integers(0, 9))
        answer = {"text": " ".join(words[start:start + 2]),
                  "answer_start": len(" ".join(words[:start])) + bool(start)}
        paragraphs.append({"context": " ".join(words), "qas": [{
            "id": f"q{q}", "question": " ".join(rng.choice(WORDS, 4)), "answers": [answer]}]})
    with open(path, "w") as f:
        json.dump({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}, f)
    return str(path)


def test_run_squad_starts_under_a_multi_worker_strategy(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder", max_sequence_length=64)
    data = _tiny_squad(tmp_path / "squad.json")
    out = tmp_path / "squad"
    workers = run_workers("run_squad.py", [
        f"--output_dir={out}", f"--encoder={encoder}", f"--train_file={data}",
        f"--predict_file={data}", "--adapter_size=2", "--max_seq_length=32", "--doc_stride=8",
        "--max_query_length=6", "--train_batch_size=4", "--eval_batch_size=4",
        "--max_train_steps=1", "--do_train", "--do_predict",
        "--distribution_strategy=multi_worker_mirrored"], str(tmp_path), TIMEOUT,
        num_workers=1)
    assert workers[0].returncode == 0, describe(workers)
    assert (out / "predictions.json").exists()


def test_a_sweep_starts_under_a_multi_worker_strategy(tmp_path):
    encoder = write_tiny_encoder(tmp_path / "encoder")
    data = write_tiny_rte(tmp_path / "RTE")
    hparams = write_hparams(tmp_path / "sweep.py", {**TINY_RUN, "encoder": encoder,
                                                    "max_train_steps": 1},
                            "grid(seed=[0])")
    out = tmp_path / "sweep"
    workers = run_workers("run_classifier.py", [
        f"--output_dir={out}", f"--hparams={hparams}", "--task_name=RTE", f"--data_dir={data}",
        "--distribution_strategy=multi_worker_mirrored"], str(tmp_path), TIMEOUT,
        num_workers=1)
    assert workers[0].returncode == 0, describe(workers)
    assert (out / "best.json").exists()


# Runs run_classifier.py with BERT's TPU flags; the Cloud TPU calls are
# replaced by stand-ins that record whether TensorFlow's context had started.
_FAKE_TPU = """
import json, os, runpy, sys
import tensorflow as tf
from tensorflow.python.eager import context

events = []

def started():
    return bool(context.context()._initialized)  # pylint: disable=protected-access

class Resolver:
    def __init__(self, tpu=None, zone=None, project=None, **kwargs):
        events.append(["resolver", tpu, zone, project, started()])

def connect(resolver):
    events.append(["connect", started()])

def initialize(resolver):
    events.append(["initialize", started()])

def strategy(resolver):
    events.append(["strategy", started()])
    print("EVENTS " + json.dumps(events), flush=True)
    os._exit(0)

tf.distribute.cluster_resolver.TPUClusterResolver = Resolver
tf.config.experimental_connect_to_cluster = connect
tf.tpu.experimental.initialize_tpu_system = initialize
tf.distribute.TPUStrategy = strategy
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_tpu_is_connected_and_initialised_before_any_op(tmp_path):
    data = write_tiny_rte(tmp_path / "RTE")
    proc = subprocess.run(
        [sys.executable, "-c", _FAKE_TPU, str(REPO_ROOT / "run_classifier.py"),
         "--task_name=RTE", f"--data_dir={data}", "--encoder=minilm_l6", "--do_train",
         f"--output_dir={tmp_path / 'run'}", "--use_tpu", "--tpu_name=my-tpu",
         "--tpu_zone=us-central1-b", "--gcp_project=my-project"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=TIMEOUT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("EVENTS ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads(lines[0][len("EVENTS "):]) == [
        ["resolver", "my-tpu", "us-central1-b", "my-project", False],
        ["connect", False], ["initialize", False], ["strategy", False]]
