"""Matmul rates of a training step's operand layouts: transposed vs plain.

  .venv/bin/python benchmarks/matmul_layouts.py [--rounds=4] [--precision=fp32|bf16]

A training step multiplies the same shapes in several layouts: the forward
pass `X W`, the input gradient `dY W^T` (a transposed operand), the weight
gradient `X^T dY`; in attention `Q K^T` and `P V` and their four gradients.
This times each as the step's ops do (`tf.matmul` with `transpose_a` /
`transpose_b`, traced), beside the same product with the transposed operand
materialised beforehand (a plain matmul), for the embedded MiniLM-L6's shapes
at `--tokens` rows (batch 32 x 128 tokens by default). Layouts run
alternately in each round (A B, B A, ...); figures are medians over rounds.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

DENSE_SHAPES = ((384, 1152), (384, 384), (384, 1536), (1536, 384))
HEADS, HEAD_SIZE = 12, 32


def _cases(tf, dtype, tokens, sequence):
    """{(group, name): (traced function, its arguments, GFLOP)}."""
    def normal(*shape):
        return tf.cast(tf.random.normal(shape), dtype)

    def product(transpose_a=False, transpose_b=False):
        return tf.function(lambda a, b: tf.matmul(a, b, transpose_a=transpose_a,
                                                  transpose_b=transpose_b))

    cases = {}
    for k, n in DENSE_SHAPES:
        x, w, dy = normal(tokens, k), normal(k, n), normal(tokens, n)
        group, gflop = f"dense {k}x{n}", 2 * tokens * k * n / 1e9
        cases[group, "forward X W"] = (product(), (x, w), gflop)
        cases[group, "dX = dY W^T"] = (product(transpose_b=True), (dy, w), gflop)
        cases[group, "dX, W^T stored"] = (product(), (dy, tf.transpose(w) + 0), gflop)
        cases[group, "dW = X^T dY"] = (product(transpose_a=True), (x, dy), gflop)
    batch = tokens // sequence
    q = normal(batch, HEADS, sequence, HEAD_SIZE)
    k = normal(batch, HEADS, sequence, HEAD_SIZE)
    p = normal(batch, HEADS, sequence, sequence)
    group, gflop = "attention", 2 * batch * HEADS * sequence * sequence * HEAD_SIZE / 1e9
    cases[group, "scores Q K^T"] = (product(transpose_b=True), (q, k), gflop)
    cases[group, "scores, K^T stored"] = (product(), (q, tf.linalg.matrix_transpose(k) + 0), gflop)
    cases[group, "context P V"] = (product(), (p, k), gflop)
    cases[group, "dP = dC V^T"] = (product(transpose_b=True), (q, k), gflop)
    cases[group, "dV = P^T dC"] = (product(transpose_a=True), (p, q), gflop)
    cases[group, "dQ = dS K"] = (product(), (p, k), gflop)
    cases[group, "dK = dS^T Q"] = (product(transpose_a=True), (p, q), gflop)
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=10, help="calls timed together per round")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--tokens", type=int, default=4096, help="rows: batch x sequence")
    parser.add_argument("--sequence", type=int, default=128)
    args = parser.parse_args()
    if args.rounds < 1 or args.calls < 1 or args.tokens % args.sequence:
        parser.error("--rounds and --calls must be >= 1 and --tokens a multiple of --sequence")

    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    import tensorflow as tf
    from train_throughput import cpu_description

    dtype = tf.bfloat16 if args.precision == "bf16" else tf.float32
    cases = _cases(tf, dtype, args.tokens, args.sequence)
    for fn, inputs, _ in cases.values():
        fn(*inputs).numpy()  # trace and warm up
    times = {key: [] for key in cases}
    order = list(cases)
    for round_index in range(args.rounds):
        for key in order if round_index % 2 == 0 else order[::-1]:
            fn, inputs, _ = cases[key]
            start = time.perf_counter()
            for _ in range(args.calls):
                result = fn(*inputs)
            result.numpy()
            times[key].append((time.perf_counter() - start) / args.calls)

    print(f"Matmul layouts, {args.precision}, {args.tokens} rows ({args.sequence} per sequence); "
          f"CPU {cpu_description()}; medians of {args.rounds} alternating rounds\n")
    print("| shape | product | ms | GFLOP/s |")
    print("|---|---|---|---|")
    for (group, name), (_, _, gflop) in cases.items():
        seconds = statistics.median(times[group, name])
        print(f"| {group} | {name} | {seconds * 1e3:.2f} | {gflop / seconds:.0f} |")


if __name__ == "__main__":
    main()
