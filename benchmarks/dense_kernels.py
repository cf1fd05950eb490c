"""bf16 dense layers in bfloat16 kernels vs float32 kernels, forward and backward.

  .venv/bin/python benchmarks/dense_kernels.py [--rounds=6] [--tokens=4096]

Times one `TokenDense` layer of each shape the embedded MiniLM-L6 encoder and
its adapters use (384 -> 384 attention projections, 384 -> 1536 and
1536 -> 384 feed-forward, 384 -> 64 -> 384 adapter), under the
mixed_bfloat16 policy, forward pass plus input and kernel gradients, with
the ops' `bf16_matmuls` setting "bfloat16" and "float32"
(`bert_adapters.ops.settings`, `--bf16_matmuls`). The two run alternately (A B, B A, ...) and each figure is
the median over rounds. Prints the CPU and what `--bf16_matmuls=auto` picks
on it.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

SHAPES = ((384, 384), (384, 1536), (1536, 384), (384, 64), (64, 384))
KERNELS = ("bfloat16", "float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=5, help="calls timed together per round")
    parser.add_argument("--tokens", type=int, default=4096, help="rows: batch x sequence")
    args = parser.parse_args()

    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    import keras
    import tensorflow as tf

    from bert_adapters.ops import dense, settings
    from train_throughput import cpu_description

    keras.config.set_dtype_policy("mixed_bfloat16")
    print(f"CPU: {cpu_description()}")
    print(f"--bf16_matmuls=auto here: "
          f"{'float32' if settings.float32_matmuls(tf.bfloat16) else 'bfloat16'} "
          f"kernels\n")
    print(f"| shape ({args.tokens} tokens) | bfloat16 kernels ms | float32 kernels ms | "
          f"speed-up |")
    print("|---|---|---|---|")
    for units_in, units_out in SHAPES:
        x = tf.cast(tf.random.normal([args.tokens, units_in]), tf.bfloat16)
        dy = tf.cast(tf.random.normal([args.tokens, units_out]), tf.bfloat16)
        steps = {}
        for kernels in KERNELS:
            layer = dense.TokenDense(units_out)
            layer.build((None, None, units_in))

            @tf.function
            def step(x, dy, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x[None])
                return tape.gradient(y, [x, layer.kernel], output_gradients=dy[None])

            with settings.use(bf16_matmuls=kernels):   # read when `step` is traced
                step(x, dy)
            steps[kernels] = step
        times = {kernels: [] for kernels in KERNELS}
        for round_index in range(args.rounds):
            for kernels in (KERNELS if round_index % 2 == 0 else KERNELS[::-1]):
                started = time.perf_counter()
                for _ in range(args.calls):
                    grads = steps[kernels](x, dy)
                grads[0].numpy()
                times[kernels].append((time.perf_counter() - started) / args.calls * 1e3)
        narrow, wide = (statistics.median(times[k]) for k in KERNELS)
        print(f"| {units_in} -> {units_out} | {narrow:.1f} | {wide:.1f} | {narrow / wide:.2f}x |")


if __name__ == "__main__":
    main()
