"""Serving many tasks from one bank: mixed-task batch cost, size on disk, requests/s, SQuAD.

  nice .venv/bin/python benchmarks/bank_throughput.py                 # 4 synthetic tasks
  nice .venv/bin/python benchmarks/bank_throughput.py --task_dirs runs/a runs/b ...
  nice .venv/bin/python benchmarks/bank_throughput.py --parts squad size

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
     lengths (what `bank predict` does), and one request at a time;
  4. SQuAD questions per second (real dev questions, a synthetic span task
     of BERT's run_squad.py settings: windows of 384 tokens every 128) in
     batches of 32 questions: the SavedModel answering them whole (windows,
     best span and answer text in the graph) beside the Python path `bank
     predict` took for span tasks before the SavedModel answered them
     (`squad_features.convert_examples`, the bank's forward pass on windows
     padded to 384 tokens, 32 a batch, `squad_postprocess.postprocess`),
     A B B A, medians; and the bank's size on disk with and without the span
     task (`saved_model.pb`, the graph, apart).
The CPU line is `bert_adapters.ops.host.cpu_description()`.
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

import bert_adapters  # noqa: E402,F401  (first: it sets TensorFlow's CPU options)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_adapters import checkpoints, load_tokenizer  # noqa: E402
from bert_adapters.checkpoints import artifact  # noqa: E402
from bert_adapters.model import heads, trainable  # noqa: E402
from bert_adapters.bank import TaskBank  # noqa: E402
from bert_adapters.data import get_task, load_split  # noqa: E402
from bert_adapters.checkpoints.fingerprint import base_fingerprint  # noqa: E402
from bert_adapters.data.squad import read_squad_json  # noqa: E402
from bert_adapters.model.bert_encoder import INPUT_NAMES  # noqa: E402
from bert_adapters.ops.host import cpu_description  # noqa: E402
from bert_adapters.tasks.squad_features import convert_examples  # noqa: E402
from bert_adapters.tasks.squad_postprocess import postprocess  # noqa: E402

TASKS = ("RTE", "SST-2", "MRPC", "CoLA")
SOURCE = "minilm_l6"
SPAN = {"max_seq_length": 384, "doc_stride": 128, "max_query_length": 64, "n_best_size": 20,
        "max_answer_length": 30}  # BERT's run_squad.py defaults
PARTS = ("forward", "size", "requests", "squad")


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


def synthetic_span_artifact(root, adapter_size=64, seed=1):
    """A SQuAD span artifact: the base plus perturbed adapters, LayerNorms and 2-unit head."""
    encoder = checkpoints.load_encoder(SOURCE, adapter_size=adapter_size)
    fingerprint = base_fingerprint(encoder)
    trainable.apply_tuning(encoder, "adapters")
    encoder.pooler.trainable = False  # A span head never reads it (tasks/squad.py).
    model = heads.build_span_model(encoder)
    rng = np.random.default_rng(seed)
    for variable in model.trainable_weights:
        value = variable.numpy()
        variable.assign(value + rng.normal(0.0, 0.02, value.shape).astype(value.dtype))
    directory = os.path.join(root, "squad")
    artifact.save_artifact(directory, model, encoder, {
        "kind": "span", "task": "SQuAD-v1.1", "tuning": "adapters", "num_tuned_layers": None,
        "adapter_size": adapter_size, "adapter_init_scale": 1e-2, "encoder_source": SOURCE,
        "global_step": 0, **SPAN}, fingerprint)
    return directory


def squad_questions(count):
    """(questions, contexts): the first `count` questions of SQuAD dev."""
    data = read_squad_json(os.path.join(DATA_DIR, "squad", "v1.1", "dev-v1.1.json"),
                           is_training=False)
    examples = data.examples[:count]
    return [e.question_text for e in examples], [e.context_text for e in examples]


def python_span_answers(bank, task, questions, contexts, batch_size=32):
    """Answers as `bank predict` computed them for span tasks before the SavedModel did."""
    from bert_adapters.data.squad import SquadExample
    from bert_adapters.model.heads import MASKED_LOGIT

    entry = bank.task(task)
    examples = [SquadExample(str(i), q, c, (), "") for i, (q, c) in
                enumerate(zip(questions, contexts))]
    features = convert_examples(examples, bank.tokenizer, entry.max_seq_length,
                                SPAN["doc_stride"], SPAN["max_query_length"])
    forward = _python_forward(bank)
    index = bank.task_names.index(entry.name)
    start = np.zeros(features.input_mask.shape, np.float32)
    end = np.zeros_like(start)
    for first in range(0, len(features), batch_size):
        rows = slice(first, first + batch_size)
        inputs = {name: tf.constant(getattr(features, name)[rows]) for name in INPUT_NAMES}
        ids = tf.fill([inputs["input_mask"].shape[0]], index)
        _, span_logits = forward(inputs, ids)
        tokens = features.input_mask[rows] > 0
        start[rows] = np.where(tokens, span_logits[:, :, 0], MASKED_LOGIT)
        end[rows] = np.where(tokens, span_logits[:, :, 1], MASKED_LOGIT)
    answers, _ = postprocess(examples, features, start, end, SPAN["n_best_size"],
                             SPAN["max_answer_length"])
    return [answers[e.qas_id] for e in examples]


_FORWARDS = {}


def _python_forward(bank):
    if id(bank) not in _FORWARDS:
        spec = {name: tf.TensorSpec([None, None], tf.int32) for name in INPUT_NAMES}
        _FORWARDS[id(bank)] = tf.function(bank.model.outputs, input_signature=[
            spec, tf.TensorSpec([None], tf.int32)])
    return _FORWARDS[id(bank)]


def squad_rates(bank, bank_dir, num_questions, repeats, batch_size=32):
    """{path: median questions/s}, the two paths timed A B B A; checks they agree."""
    questions, contexts = squad_questions(num_questions)
    serve = tf.saved_model.load(bank_dir).signatures["serving_default"]
    name = "SQuAD-v1.1"

    def savedmodel():
        answers = []
        for first in range(0, len(questions), batch_size):
            part = slice(first, first + batch_size)
            out = serve(task=tf.constant([name] * len(questions[part])),
                        text_a=tf.constant(questions[part]), text_b=tf.constant(contexts[part]))
            answers += [a.decode("utf-8") for a in out["prediction"].numpy()]
        return answers

    def python():
        return python_span_answers(bank, name, questions, contexts, batch_size)

    graph_answers, python_answers = savedmodel(), python()  # Warm up (and trace).
    agree = sum(a == b for a, b in zip(graph_answers, python_answers))
    seconds = abba({"SavedModel (in-graph windows and search)": savedmodel,
                    "Python features + postprocess (bank predict before)": python}, repeats)
    return {path: len(questions) / s for path, s in seconds.items()}, agree, len(questions)


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


def graph_size(bank_dir):
    return os.path.getsize(os.path.join(bank_dir, "saved_model.pb"))


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
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="What to measure (default: everything).")
    parser.add_argument("--squad_questions", type=int, default=64,
                        help="SQuAD dev questions per pass of the squad part.")
    parser.add_argument("--work_dir", help="Where to write artifacts and exports (default: a "
                        "temporary directory).")
    args = parser.parse_args()
    root = args.work_dir or tempfile.mkdtemp(prefix="bank_throughput_")
    cpu = cpu_description()
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f} at start")
    results = {"cpu": cpu}
    task_dirs = args.task_dirs or synthetic_artifacts(os.path.join(root, "tasks"))
    bank = TaskBank.load(SOURCE, task_dirs)
    if "forward" in args.parts:
        results.update(report_forward(bank, task_dirs, args.repeats))
    bank_dir = bank.export(os.path.join(root, "bank"), overwrite=True)
    if "size" in args.parts:
        results["size_bytes"] = report_sizes(bank, bank_dir, task_dirs, root)
    if "requests" in args.parts:
        rates = requests_per_second(bank_dir, args.repeats)
        print("SavedModel on raw strings, 4 tasks interleaved (median requests/s):")
        for name, rate in rates.items():
            print(f"  {name:<20} {rate:7.1f}")
        results["requests_per_second"] = rates
    if "squad" in args.parts:
        results.update(report_squad(bank, bank_dir, task_dirs, root, args))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps(results))


def report_forward(bank, task_dirs, repeats):
    costs = forward_cost(bank, task_dirs, repeats)
    print("Forward pass, batch 32 x 128 tokens (median seconds):")
    for name, seconds in costs.items():
        print(f"  {name:<26} {seconds:.3f}")
    ratios = {"mixed / bank one task": costs["bank, 4 tasks mixed"] / costs["bank, one task"],
              "mixed / own task model": costs["bank, 4 tasks mixed (2)"]
              / costs["own task model"]}
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.3f}x")
    return {"forward_seconds": costs, "ratios": ratios}


def report_sizes(bank, bank_dir, task_dirs, root):
    base_dir = os.path.join(root, "base")
    export_base(base_dir)
    separate = 0
    for i, directory in enumerate(task_dirs):
        one = TaskBank.load(bank.encoder, [directory]).export(
            os.path.join(root, f"single_{i}"), overwrite=True)
        separate += du(one)
    sizes = {"bank (4 tasks)": du(bank_dir), "base alone": du(base_dir),
             "4 separate models": separate,
             "one task's artifact": du(os.path.join(bank_dir, "tasks")) // len(task_dirs)}
    print("Size on disk (MB):")
    for name, size in sizes.items():
        print(f"  {name:<22} {size / 1e6:8.1f}")
    return sizes


def report_squad(bank, bank_dir, task_dirs, root, args):
    span_bank = TaskBank.load(bank.encoder, list(task_dirs) + [synthetic_span_artifact(root)])
    span_dir = span_bank.export(os.path.join(root, "bank_squad"), overwrite=True)
    sizes = {"4 tasks: total": du(bank_dir), "4 tasks: saved_model.pb": graph_size(bank_dir),
             "4 tasks + SQuAD: total": du(span_dir),
             "4 tasks + SQuAD: saved_model.pb": graph_size(span_dir)}
    print("Size on disk with a span task (MB):")
    for name, size in sizes.items():
        print(f"  {name:<32} {size / 1e6:8.2f}")
    rates, agree, count = squad_rates(span_bank, span_dir, args.squad_questions, args.repeats)
    print(f"SQuAD dev questions, batches of 32 (median questions/s; the two paths' answers "
          f"agree on {agree} of {count}):")
    for name, rate in rates.items():
        print(f"  {name:<52} {rate:7.2f}")
    return {"squad_size_bytes": sizes, "squad_questions_per_second": rates,
            "squad_answers_agree": [agree, count]}


if __name__ == "__main__":
    main()
