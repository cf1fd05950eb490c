"""Training throughput and peak memory: adapters vs full fine-tuning, side by side.

  .venv/bin/python benchmarks/train_throughput.py --data=synthetic128   # issue 2
  .venv/bin/python benchmarks/train_throughput.py --data=mrpc           # issue 3

Every configuration runs in a fresh subprocess (so peak RSS and the dtype
policy are its own) through the trainer's own `make_train_step` and input
pipeline, on the embedded MiniLM-L6 encoder, batch 32:
  - synthetic128: every sequence 128 real tokens (the shape the reference
    figures in shared/reference/performance.md use);
  - mrpc: MRPC's real training pairs, padded to 128 ("fixed"), to each
    batch's longest ("dynamic"), or batched by similar length ("grouped").
Reported: median step time over the timed steps, examples/s, padded tokens
per batch, peak RSS, and ratios against full fine-tuning in the same run.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))


def worker(tuning, precision, padding, data, steps, warmup, batch_size):
    sys.path.insert(0, REPO)
    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    import keras
    import numpy as np
    import tensorflow as tf

    from bert_adapters import checkpoints, tuning as tuning_lib
    from bert_adapters import load_tokenizer
    from bert_adapters.tokenization import encode
    from bert_adapters.data import get_task, load_split
    from bert_adapters.training import input_pipeline, trainer
    from bert_adapters.training.optimization import create_optimizer
    from bert_adapters.heads import build_classifier_model

    keras.config.set_dtype_policy({"fp32": "float32", "bf16": "mixed_bfloat16"}[precision])
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    total = warmup + steps
    if data == "synthetic128":
        rng = np.random.default_rng(0)
        n = batch_size * total
        features = {"input_word_ids": rng.integers(1000, 30000, (n, 128)).astype("int32"),
                    "input_mask": np.ones((n, 128), "int32"),
                    "input_type_ids": np.zeros((n, 128), "int32")}
        labels = rng.integers(0, 2, n).astype("int64")
    else:
        task = get_task("MRPC")
        examples = load_split(task, "train", os.path.join(DATA_DIR, "glue", "MRPC"))
        features = encode(load_tokenizer("minilm_l6", max_seq_length=128),
                                         examples.texts_a, examples.texts_b)
        labels = examples.labels
    lengths = input_pipeline.sequence_lengths(features)
    rows = input_pipeline.train_index_matrix(
        len(labels), batch_size, total, seed=0,
        lengths=lengths if padding == "grouped" else None)
    with strategy.scope():
        encoder = checkpoints.load_encoder(
            "minilm_l6", adapter_size=64 if tuning == "adapters" else None)
        tuning_lib.apply_tuning(encoder, tuning)
        model = build_classifier_model(encoder, 2)
        optimizer = create_optimizer("bert_adam", 1e-4, total, gradients_reduced_by_caller=True)
        optimizer.build(model.trainable_variables)
        global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
    dataset = input_pipeline.make_dataset(strategy, features, labels, rows,
                                          static_shapes=padding == "fixed")
    iterator = iter(dataset)
    train_step = trainer.make_train_step(strategy, model, optimizer,
                                         _cross_entropy, batch_size,
                                         global_step)
    times = []
    for i in range(total):
        started = time.perf_counter()
        float(train_step(iterator))
        if i >= warmup:
            times.append(time.perf_counter() - started)
    padded = [int(np.ceil(lengths[r].max() / 8) * 8) if padding != "fixed" else 128
              for r in rows[warmup:]]
    step = statistics.median(times)
    return {"tuning": tuning, "precision": precision, "padding": padding, "data": data,
            "step_seconds": step, "examples_per_second": batch_size / step,
            "padded_tokens_per_example": float(np.mean(padded)),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "trained_params": int(sum(np.prod(v.shape) for v in model.trainable_weights))}


def _cross_entropy(labels, logits):
    import tensorflow as tf
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["synthetic128", "mrpc"], default="synthetic128")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--paddings", default=None,
                        help="fixed,dynamic,grouped (default: fixed for synthetic128, all for "
                             "mrpc)")
    parser.add_argument("--output", default=None, help="Also write the results as JSON here.")
    parser.add_argument("--reference_python", default=None,
                        help="A Python with torch + adapters: also run "
                             "reference_adapters_torch.py (synthetic128 only) for each precision.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tuning, precision, padding = args.worker.split(":")
        print("RESULT " + json.dumps(worker(tuning, precision, padding, args.data, args.steps,
                                            args.warmup, args.batch_size)))
        return
    paddings = (args.paddings or ("fixed" if args.data == "synthetic128"
                                  else "fixed,dynamic,grouped")).split(",")
    results = []
    for precision in args.precisions.split(","):
        for padding in paddings:
            for tuning in ("full", "adapters"):
                cmd = [sys.executable, os.path.abspath(__file__), f"--data={args.data}",
                       f"--steps={args.steps}", f"--warmup={args.warmup}",
                       f"--batch_size={args.batch_size}",
                       f"--worker={tuning}:{precision}:{padding}"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
                if proc.returncode or not line:
                    sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
                results.append(json.loads(line[0][len("RESULT "):]))
                r = results[-1]
                print(f"  {tuning:8s} {precision} {padding:8s} {r['examples_per_second']:6.1f} "
                      f"ex/s  {r['peak_rss_gb']:.2f} GB", file=sys.stderr)
    if args.reference_python and args.data == "synthetic128":
        script = os.path.join(REPO, "benchmarks", "reference_adapters_torch.py")
        for precision in args.precisions.split(","):
            # bf16 autocast without native bf16 units is very slow: time fewer steps.
            steps = args.steps if precision == "fp32" else min(args.steps, 3)
            proc = subprocess.run([args.reference_python, script, f"--precision={precision}",
                                   f"--steps={steps}", f"--batch_size={args.batch_size}"],
                                  capture_output=True, text=True)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{script} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(line[0][len("RESULT "):]))
    base = {(r["precision"], r["padding"]): r for r in results if r["tuning"] == "full"}
    reference = results[0]
    print(f"\nTraining throughput, MiniLM-L6 (22.7M), batch {args.batch_size}, data {args.data}, "
          f"median of {args.steps} steps\n")
    print("| tuning | precision | padding | tokens/example | examples/s | x full FT (same "
          "setting) | x full FT fp32 fixed | peak RSS GB | x full FT RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        full = base[(r["precision"], r["padding"])]
        print(f"| {r['tuning']} | {r['precision']} | {r['padding']} | "
              f"{r['padded_tokens_per_example']:.0f} | {r['examples_per_second']:.1f} | "
              f"{r['examples_per_second'] / full['examples_per_second']:.2f} | "
              f"{r['examples_per_second'] / reference['examples_per_second']:.2f} | "
              f"{r['peak_rss_gb']:.2f} | {r['peak_rss_gb'] / full['peak_rss_gb']:.2f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
