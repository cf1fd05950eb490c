"""Serving many tasks from one bank: mixed-task batch cost, size on disk, requests/s.

  nice .venv/bin/python benchmarks/bank_throughput.py                 # 4 synthetic tasks
  nice .venv/bin/python benchmarks/bank_throughput.py --task_dirs runs/a runs/b ...

On the embedded MiniLM-L6 encoder (6 layers, hidden 384), with four task
artifacts (RTE, SST-2, MRPC, CoLA; adapter size 64): by default made here
from the pre-trained base with randomly perturbed adapters, LayerNorms and
heads (their values do not change the cost; real runs can be given with
--task_dirs instead). Measured:
  1. the forward pass on one batch of 32 real test rows, padded to 128
     tokens: the bank with the batch mixing 4 tasks (8 rows each), the bank
     with all 32 rows of one task, and that task's own Keras model
     (`artifact.load_task_model`); repeated A B B A, medians;
  2. the size on disk of the 4-task bank, of the base alone (the same
     SavedModel layout: tokenizer and encoder) and of the 4 tasks exported
     as 4 separate one-task banks;
  3. requests per second of the exported SavedModel, reloaded with
     `tf.saved_model.load`, on raw strings (real test rows of the 4 tasks,
     interleaved), batches of 32 as they come, batches of 32 of similar
     lengths (what `bank predict` does), and one request at a time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))
sys.path.insert(0, REPO)

import bert_adapters  # noqa: E402  (first: it sets TensorFlow's CPU options)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_adapters import checkpoints, load_tokenizer  # noqa: E402
from bert_adapters.checkpoints import artifact  # noqa: E402
from bert_adapters.model import heads, trainable  # noqa: E402
from bert_adapters.bank import TaskBank  # noqa: E402
from bert_adapters.data import get_task, load_split  # noqa: E402
from bert_adapters.checkpoints.fingerprint import base_fingerprint  # noqa: E402

TASKS = ("RTE", "SST-2", "MRPC", "CoLA")
SOURCE = "minilm_l6"


def synthetic_artifacts(root, adapter_size=64, seed=0):
    """One artifact per task: the base plus perturbed adapters, LayerNorms and head."""
    encoder = checkpoints.load_encoder(SOURCE, adapter_size=adapter_size)
    fingerprint = base_fingerprint(encoder)
    trainable.apply_tuning(encoder, "adapters")
    rng = np.random.default_rng(seed)
    dirs = []
    for name in TASKS:
        task = get_task(name)
        model = heads.build_classifier_model(encoder, task.num_outputs)
        for variable in model.trainable_weights:
            value = variable.numpy()
            variable.assign(value + rng.normal(0.0, 0.02, value.shape).astype(value.dtype))
        directory = os.path.join(root, name)
        artifact.save_artifact(directory, model, encoder, {
            "kind": "classification", "task": task.name, "label_names": task.label_names,
            "submission_labels": task.submission_labels, "num_outputs": task.num_outputs,
            "head_dropout": 0.1, "tuning": "adapters", "num_tuned_layers": None,
            "adapter_size": adapter_size, "adapter_init_scale": 1e-2, "encoder_source": SOURCE,
            "max_seq_length": 128, "global_step": 0}, fingerprint)
        dirs.append(directory)
    return dirs


def test_rows(num_per_task):
    """(tasks, texts_a, texts_b): real test rows, the tasks interleaved."""
    columns = []
    for name in TASKS:
        task = get_task(name)
        examples = load_split(task, "test", os.path.join(DATA_DIR, "glue", task.folder))
        b = examples.texts_b if examples.texts_b is not None else [""] * len(examples.texts_a)
        columns.append([(task.name, a, tb) for a, tb in
                        zip(examples.texts_a[:num_per_task], b[:num_per_task])])
    rows = [row for group in zip(*columns) for row in group]
    return [r[0] for r in rows], [str(r[1]) for r in rows], [str(r[2]) for r in rows]


def abba(functions, repeats):
    """{name: median seconds} of two callables timed A B B A, `repeats` times."""
    (name_a, fn_a), (name_b, fn_b) = functions.items()
    times = {name_a: [], name_b: []}
    for _ in range(repeats):
        for name, fn in ((name_a, fn_a), (name_b, fn_b), (name_b, fn_b), (name_a, fn_a)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def forward_cost(bank, task_dirs, repeats):
    tasks, texts_a, texts_b = test_rows(8)
    tokenizer = load_tokenizer(SOURCE, max_seq_length=128)
    index = {name: i for i, name in enumerate(bank.task_names)}
    pair = tokenizer(texts_a, texts_b)
    single = tokenizer(texts_a)
    is_pair = np.array([bool(b) for b in texts_b])[:, None]
    inputs = {k: tf.constant(np.where(is_pair, pair[k], single[k])) for k in pair}
    mixed_ids = tf.constant([index[t] for t in tasks], tf.int32)
    one_ids = tf.zeros_like(mixed_ids)
    model = tf.function(bank.model.__call__)
    own, _, _ = artifact.load_task_model(task_dirs[0])  # Its own base (with adapters).
    own_call = tf.function(lambda x: own(x, training=False))
    for fn in (lambda: model(inputs, mixed_ids), lambda: model(inputs, one_ids),
               lambda: own_call(inputs)):
        fn()  # Trace and warm up.
    results = abba({"bank, one task": lambda: model(inputs, one_ids).numpy(),
                    "bank, 4 tasks mixed": lambda: model(inputs, mixed_ids).numpy()}, repeats)
    results.update(abba({"own task model": lambda: own_call(inputs).numpy(),
                         "bank, 4 tasks mixed (2)": lambda: model(inputs, mixed_ids).numpy()},
                        repeats))
    return results


def export_base(path):
    """The base alone, in the bank's layout: tokenizer + encoder, raw strings in."""
    encoder = checkpoints.load_encoder(SOURCE)
    module = tf.Module()
    module.encoder = encoder
    module.tokenizer = load_tokenizer(SOURCE, max_seq_length=128)
    module.serve = tf.function(lambda text_a: {"pooled_output": encoder(
        module.tokenizer(text_a))["pooled_output"]},
        input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, path, signatures={"serving_default":
                                                  module.serve.get_concrete_function()})


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def requests_per_second(bank_dir, repeats):
    tasks, texts_a, texts_b = test_rows(64)  # 256 requests
    serve = tf.saved_model.load(bank_dir).signatures["serving_default"]
    by_length = sorted(range(len(tasks)), key=lambda i: len(texts_a[i]) + len(texts_b[i]))
    results = {}
    for name, batch_size, order in (("batch 32", 32, range(len(tasks))),
                                    ("batch 32, by length", 32, by_length),
                                    ("batch 1", 1, range(32))):
        count = len(order)
        batches = [dict(task=tf.constant([tasks[i] for i in order[j:j + batch_size]]),
                        text_a=tf.constant([texts_a[i] for i in order[j:j + batch_size]]),
                        text_b=tf.constant([texts_b[i] for i in order[j:j + batch_size]]))
                   for j in range(0, count, batch_size)]
        serve(**batches[0])  # Warm up.
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                serve(**batch)["prediction"].numpy()
            rates.append(count / (time.perf_counter() - start))
        results[name] = statistics.median(rates)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task_dirs", nargs=4, help="Four artifacts on minilm_l6 instead of "
                        "synthetic ones.")
    parser.add_argument("--repeats", type=int, default=5, help="A B B A rounds.")
    parser.add_argument("--work_dir", help="Where to write artifacts and exports (default: a "
                        "temporary directory).")
    args = parser.parse_args()
    root = args.work_dir or tempfile.mkdtemp(prefix="bank_throughput_")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True).stdout.split(":")[-1].strip()
    print(f"CPU: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

    task_dirs = args.task_dirs or synthetic_artifacts(os.path.join(root, "tasks"))
    bank = TaskBank.load(SOURCE, task_dirs)
    costs = forward_cost(bank, task_dirs, args.repeats)
    print("Forward pass, batch 32 x 128 tokens (median seconds):")
    for name, seconds in costs.items():
        print(f"  {name:<26} {seconds:.3f}")
    ratios = {"mixed / bank one task": costs["bank, 4 tasks mixed"] / costs["bank, one task"],
              "mixed / own task model": costs["bank, 4 tasks mixed (2)"]
              / costs["own task model"]}
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.3f}x")

    bank_dir = bank.export(os.path.join(root, "bank"), overwrite=True)
    base_dir = os.path.join(root, "base")
    export_base(base_dir)
    separate = 0
    for i, directory in enumerate(task_dirs):
        one = TaskBank.load(bank.encoder, [directory]).export(
            os.path.join(root, f"single_{i}"), overwrite=True)
        separate += du(one)
    sizes = {"bank (4 tasks)": du(bank_dir), "base alone": du(base_dir),
             "4 separate models": separate,
             "one task's artifact": du(os.path.join(bank_dir, "tasks"))
             // len(task_dirs)}
    print("Size on disk (MB):")
    for name, size in sizes.items():
        print(f"  {name:<22} {size / 1e6:8.1f}")

    rates = requests_per_second(bank_dir, args.repeats)
    print("SavedModel on raw strings, 4 tasks interleaved (median requests/s):")
    for name, rate in rates.items():
        print(f"  {name:<20} {rate:7.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps({"cpu": cpu, "forward_seconds": costs, "ratios": ratios,
                      "size_bytes": sizes, "requests_per_second": rates}))


if __name__ == "__main__":
    main()
