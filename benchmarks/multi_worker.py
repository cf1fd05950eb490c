"""Two workers on one machine vs one process, and iterations_per_loop 1 vs 10.

  .venv/bin/python benchmarks/multi_worker.py                     # both comparisons
  .venv/bin/python benchmarks/multi_worker.py --compare=workers --steps=12 --rounds=2

Every run trains the embedded MiniLM-L6 encoder with adapters of size 64 on
MRPC's training examples (synthetic 128-token rows with --data=synthetic128),
global batch 32, batches padded to their longest sequence, through the
trainer's own input pipeline and `make_train_loop`, in fresh processes:

  --compare=workers  A: one process (one_device) on all the machine's cores;
                     B: two MultiWorkerMirroredStrategy workers on localhost
                     (TF_CONFIG), each pinned to half of the cores with taskset,
                     each computing half of every global batch, gradients
                     summed by a collective all-reduce over gRPC. Each worker
                     then times that all-reduce alone, for the adapters'
                     gradients and for a full fine-tuning's (every weight).
  --compare=loops    one process: `iterations_per_loop` 1 vs 10, and what one
                     call costs besides its steps (a loop of zero steps).

Runs go A B B A (--rounds=2; A B B A A B B A with 4); each figure is the
median over runs of a run's time per step (the timed steps' wall time over
their count, after a first loop that traces). The CPU model (as `lscpu`
says) and the load average are printed with the table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def worker(options):
    """One training process; the chief prints `RESULT {json}`."""
    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    from bert_adapters.training import distribution

    # The first TensorFlow call (a multi-worker strategy needs a fresh context).
    strategy = distribution.get_strategy(options["strategy"])
    import keras
    import numpy as np
    import tensorflow as tf

    from bert_adapters import checkpoints
    from bert_adapters.model import trainable
    from bert_adapters.model.heads import build_classifier_model
    from bert_adapters.training import input_pipeline, trainer
    from bert_adapters.training.optimization import create_optimizer
    from train_throughput import load_features

    per_loop, batch_size = options["iterations_per_loop"], options["batch_size"]
    warmup_loops = -(-options["warmup"] // per_loop)
    timed_loops = -(-options["steps"] // per_loop)
    total = (warmup_loops + timed_loops) * per_loop
    keras.utils.set_random_seed(0)
    features, labels = load_features(options["data"], batch_size, total)
    rows = input_pipeline.train_index_matrix(len(labels), batch_size, total, seed=0)
    with strategy.scope():
        encoder = checkpoints.load_encoder("minilm_l6", adapter_size=64)
        trainable.apply_tuning(encoder, "adapters")
        model = build_classifier_model(encoder, 2, cls_only_top_layer=True)   # the runs' default
        optimizer = create_optimizer("bert_adam", 1e-4, total, gradients_reduced_by_caller=True)
        optimizer.build(model.trainable_variables)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    iterator = iter(input_pipeline.make_dataset(strategy, features, labels, rows))
    train_loop = trainer.make_train_loop(strategy, model, optimizer, _cross_entropy, batch_size,
                                         global_step)
    num_steps = tf.constant(per_loop, tf.int32)
    for _ in range(warmup_loops):
        train_loop(iterator, num_steps)[0].numpy()
    started = time.perf_counter()
    for _ in range(timed_loops):
        train_loop(iterator, num_steps)[0].numpy()
    step = (time.perf_counter() - started) / (timed_loops * per_loop)
    # What one call costs besides its steps: a loop of zero steps.
    no_steps, calls = tf.constant(0, tf.int32), []
    for _ in range(20):
        started = time.perf_counter()
        train_loop(iterator, no_steps)[0].numpy()
        calls.append(time.perf_counter() - started)
    result = {"step_seconds": step, "examples_per_second": batch_size / step,
              "call_seconds": statistics.median(calls),
              "workers": distribution.worker_count(strategy),
              "trained_params": int(sum(np.prod(v.shape) for v in model.trainable_weights))}
    if distribution.is_multi_worker(strategy):
        for name, variables in (("adapters", model.trainable_variables),
                                ("full", model.weights)):
            result[f"allreduce_seconds_{name}"] = _time_all_reduce(strategy, variables)
            result[f"allreduce_floats_{name}"] = int(sum(np.prod(v.shape) for v in variables))
    if distribution.is_chief(strategy):
        print("RESULT " + json.dumps(result), flush=True)


def _time_all_reduce(strategy, variables, repeats=10):
    """Median seconds of one SUM all-reduce of tensors shaped like `variables`."""
    import tensorflow as tf

    grads = [tf.zeros(v.shape, tf.float32) for v in variables]

    @tf.function
    def all_reduce():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, grads))

    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy(), strategy.experimental_local_results(
            all_reduce()))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = strategy.experimental_local_results(all_reduce())
        tf.nest.map_structure(lambda t: t.numpy(), out)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cross_entropy(labels, logits):
    import tensorflow as tf
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


# === The driver ===
def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_setting(setting, options, timeout):
    """Runs one setting in fresh processes; returns the chief's result."""
    base = {**options, "strategy": "one_device", "iterations_per_loop": 1}
    if setting.startswith("loops="):
        commands = [({**base, "iterations_per_loop": int(setting[6:])}, None, None)]
    elif setting == "one process":
        commands = [(base, None, None)]
    else:  # two workers, each on half of the cores
        cores = sorted(os.sched_getaffinity(0))
        halves = [cores[:len(cores) // 2] or cores, cores[len(cores) // 2:] or cores]
        ports = _free_ports(2)
        cluster = {"worker": [f"localhost:{p}" for p in ports]}
        commands = [({**base, "strategy": "multi_worker_mirrored"},
                     json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                     halves[i]) for i in range(2)]
    processes = []
    for worker_options, tf_config, cores in commands:
        env = dict(os.environ)
        if tf_config:
            env["TF_CONFIG"] = tf_config
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(worker_options)]
        if cores:
            cmd = ["taskset", "-c", ",".join(map(str, cores))] + cmd
        processes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=timeout))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()  # TensorFlow's coordination service ignores SIGTERM.
                p.wait()
    lines = [l for out, _ in outputs for l in out.splitlines() if l.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{setting}: no result\n" + "\n".join(e[-3000:] for _, e in outputs))
    return json.loads(lines[0][len("RESULT "):])


def cpu_model():
    """The CPU model, family and flags that matter here (`bert_adapters.ops.host`)."""
    sys.path.insert(0, REPO)
    from bert_adapters.ops import host
    return host.cpu_description()


def compare(settings, options, rounds, timeout):
    """A B B A ...: {setting: [result per run]}, with the load average of each run."""
    results = {s: [] for s in settings}
    for r in range(rounds):
        for setting in (settings if r % 2 == 0 else settings[::-1]):
            load = os.getloadavg()[0]
            result = run_setting(setting, options, timeout)
            result["load"] = load
            results[setting].append(result)
            print(f"  {setting}: {result['examples_per_second']:.1f} ex/s "
                  f"(load {load:.1f})", flush=True)
    return results


def _median(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--compare", default="workers,loops")
    parser.add_argument("--data", choices=["mrpc", "synthetic128"], default="mrpc")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing (rounded "
                        "up to whole loops)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    options = {"data": args.data, "steps": args.steps, "warmup": args.warmup,
               "batch_size": args.batch_size}
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores; MiniLM-L6 + adapters "
          f"(64), {args.data}, global batch {args.batch_size}, {args.steps} timed steps, "
          f"median of {args.rounds} runs each", flush=True)
    report = []
    if "workers" in args.compare:
        runs = compare(["one process", "two workers"], options, args.rounds, args.timeout)
        one, two = runs["one process"], runs["two workers"]
        report += [
            "| setting | ex/s | s/step |", "|---|---|---|",
            f"| one process, all cores | {_median(one, 'examples_per_second'):.1f} | "
            f"{_median(one, 'step_seconds'):.3f} |",
            f"| two workers on localhost, half the cores each | "
            f"{_median(two, 'examples_per_second'):.1f} | {_median(two, 'step_seconds'):.3f} |",
            "",
            f"All-reduce alone, two workers: adapters' gradients "
            f"({two[0]['allreduce_floats_adapters'] / 1e6:.2f}M floats) "
            f"{_median(two, 'allreduce_seconds_adapters') * 1000:.0f} ms per step; a full "
            f"fine-tuning's ({two[0]['allreduce_floats_full'] / 1e6:.1f}M floats) "
            f"{_median(two, 'allreduce_seconds_full') * 1000:.0f} ms per step.", ""]
    if "loops" in args.compare:
        runs = compare(["loops=1", "loops=10"], options, args.rounds, args.timeout)
        report += ["| iterations_per_loop | ex/s | s/step | call overhead (0 steps) |",
                   "|---|---|---|---|"] + [
            f"| {s[6:]} | {_median(runs[s], 'examples_per_second'):.1f} | "
            f"{_median(runs[s], 'step_seconds'):.3f} | "
            f"{_median(runs[s], 'call_seconds') * 1000:.1f} ms |" for s in runs]
    print("\n".join(report))


if __name__ == "__main__":
    main()
