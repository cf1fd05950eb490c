"""One training process on every core against several of one intra-op thread each.

  .venv/bin/python benchmarks/parallel_trials.py [--data=mrpc --precision=bf16 --processes=2]

What a sweep on a small machine gains from running its trials side by side
(a KerasTuner chief and workers on one machine, each worker with
`TF_NUM_INTRAOP_THREADS=1`; README, "Sweeps") instead of one after another on
every core. Each side runs `train_throughput.py`'s own measurement (adapters
of size 64, the trainer's step and input pipeline, batch 32, batches grouped
by length on real data) in fresh processes: "one" is one process with
TensorFlow's default threads, "parallel" is `--processes` processes of one
intra-op thread started together. Rounds alternate (one, parallel, parallel,
one, ...); reported per side: the median over rounds of the examples/s of
all its processes together, and their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys

from train_throughput import parse_result

THROUGHPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_throughput.py")


def _start(args, threads):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
    worker = f"adapters:{args.precision}:{args.padding}"
    command = [sys.executable, THROUGHPUT, "--data", args.data, "--steps", str(args.steps),
               "--worker", worker]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _examples_per_second(processes):
    total = 0.0
    for process in processes:
        out, _ = process.communicate()
        result = parse_result(out)
        if process.returncode or result is None:
            raise SystemExit(f"a throughput worker failed (exit {process.returncode})")
        total += result["examples_per_second"]
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mrpc")
    parser.add_argument("--padding", default="grouped")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sides = {"one": [], "parallel": []}
    for r in range(args.rounds):
        order = ["one", "parallel"] if r % 2 == 0 else ["parallel", "one"]
        for side in order:
            if side == "one":
                processes = [_start(args, threads=None)]
            else:
                processes = [_start(args, threads=1) for _ in range(args.processes)]
            sides[side].append(_examples_per_second(processes))
            print(f"round {r + 1} {side}: {sides[side][-1]:.1f} ex/s", flush=True)
    one, parallel = (statistics.median(sides[s]) for s in ("one", "parallel"))
    print(f"\n{args.data} {args.padding} {args.precision}, adapters of size 64, batch 32, "
          f"{os.cpu_count()} CPUs")
    print(f"one process, default threads:        {one:.1f} ex/s")
    print(f"{args.processes} processes of one thread each: {parallel:.1f} ex/s in all "
          f"({parallel / one:.2f}x)")


if __name__ == "__main__":
    main()
