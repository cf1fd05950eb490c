"""Per-trial fixed cost of a sweep: with the trial cache and without it.

  .venv/bin/python benchmarks/sweep_overhead.py [--task=MRPC --trials=4 --steps=10 --rounds=1]

Runs the same small sweep (learning rate x seed, adapters of size 64 on the
embedded MiniLM-L6, batch 32, grouped by length, dev evaluation) through
`sweep.runner.Sweep.run_trial`, once with the trial cache (what a sweep does)
and once with the cache off (every trial reads the checkpoint and the data,
builds and traces again), each in a fresh process, in A B B A order for
`--rounds` rounds. A trial's time is split into its training steps (steps x
the median time of one training step in that process) and everything else,
its fixed cost: reading, tokenizing, building, tracing, checkpoints,
evaluation, files. Reported: the median per-trial fixed cost of the first
trial and of the later ones, and the median step time.
"""

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))

HPARAMS = '''
from bert_adapters.sweep import grid


def get_config():
    return {{"encoder": "minilm_l6", "tuning": "adapters", "adapter_size": 64,
            "max_seq_length": 128, "train_batch_size": 32, "max_train_steps": {steps},
            "group_by_length": True, "do_predict": False, "log_every_steps": 1000}}


def get_sweep():
    return grid(learning_rate={rates}, seed=[0, 1])
'''


def worker(cached, task, trials, steps):
    sys.path.insert(0, REPO)
    import bert_adapters  # noqa: F401  (first: it sets TensorFlow's CPU options)
    from bert_adapters.sweep import runner
    from bert_adapters.sweep.hparams_file import load_hparams
    from bert_adapters.training import trainer

    step_times = []
    make_train_loop = trainer.make_train_loop

    def timed_make_train_loop(*args, **kwargs):
        loop = make_train_loop(*args, **kwargs)

        def timed(iterator, num_steps):
            started = time.perf_counter()
            out = loop(iterator, num_steps)
            out[0].numpy()
            step_times.append((int(num_steps), time.perf_counter() - started))
            return out

        return timed

    trainer.make_train_loop = timed_make_train_loop
    work = tempfile.mkdtemp(prefix="sweep_overhead_")
    rates = [3e-4, 1e-3, 3e-3, 1e-4][:max(1, (trials + 1) // 2)]
    path = os.path.join(work, "hparams.py")
    with open(path, "w") as f:
        f.write(HPARAMS.format(steps=steps, rates=rates))
    hparams = load_hparams(path)
    base, all_trials = runner.resolve_trials(hparams, explicit={
        "task_name": task, "data_dir": os.path.join(DATA_DIR, "glue", task)})
    sweep = runner.Sweep(hparams, base, all_trials[:trials], os.path.join(work, "sweep"))
    if not cached:
        sweep.cache.active = contextlib.nullcontext
    sweep.prepare()
    walls, trial_steps = [], []
    for trial in sweep.trials:
        first = len(step_times)
        started = time.perf_counter()
        sweep.run_trial(trial.name)
        walls.append(time.perf_counter() - started)
        trial_steps.append(step_times[first:])
    # One step's time: the median over every call but each trial's first
    # (which may trace).
    steady = [t / n for calls in trial_steps for n, t in calls[1:]]
    step = statistics.median(steady)
    fixed = [w - sum(n for n, _ in calls) * step for w, calls in zip(walls, trial_steps)]
    shutil.rmtree(work, ignore_errors=True)
    return {"cached": cached, "trials": trials, "steps": steps, "wall_seconds": walls,
            "fixed_seconds": fixed, "step_seconds": step,
            "train_seconds": [w - f for w, f in zip(walls, fixed)]}


def load_average():
    return os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="MRPC")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="A B B A rounds")
    parser.add_argument("--output", default=None, help="Also write the results as JSON here.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker == "cached", args.task, args.trials,
                                            args.steps)))
        return
    results = []
    for _ in range(args.rounds):
        for mode in ("uncached", "cached", "cached", "uncached"):
            load = load_average()
            cmd = [sys.executable, os.path.abspath(__file__), f"--worker={mode}",
                   f"--task={args.task}", f"--trials={args.trials}", f"--steps={args.steps}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(line[0][len("RESULT "):])
            result["load_average"] = [load, load_average()]
            results.append(result)
            print(f"  {mode:8s} fixed per trial "
                  f"{', '.join(f'{f:.1f}' for f in result['fixed_seconds'])} s; step "
                  f"{result['step_seconds']:.2f} s; load {load:.1f}", file=sys.stderr)
    print(f"\nSweep overhead: {args.trials} trials x {args.steps} steps, {args.task}, "
          f"MiniLM-L6 adapters 64, batch 32; CPU {cpu_model()}; {args.rounds} A B B A "
          f"round(s), medians\n")
    print("| trial cache | first trial fixed s | later trials fixed s (median) | "
          "step s | trial wall s (median) | load average |")
    print("|---|---|---|---|---|---|")
    for cached in (False, True):
        runs = [r for r in results if r["cached"] == cached]
        first = statistics.median(r["fixed_seconds"][0] for r in runs)
        later = statistics.median(f for r in runs for f in r["fixed_seconds"][1:])
        step = statistics.median(r["step_seconds"] for r in runs)
        wall = statistics.median(w for r in runs for w in r["wall_seconds"])
        loads = [l for r in runs for l in r["load_average"]]
        print(f"| {'on' if cached else 'off'} | {first:.1f} | {later:.1f} | {step:.2f} | "
              f"{wall:.1f} | {min(loads):.1f}-{max(loads):.1f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)


def cpu_model():
    """The CPU model, family and flags that matter here (`bert_adapters.ops.host`)."""
    sys.path.insert(0, REPO)
    from bert_adapters.ops import host
    return host.cpu_description()


if __name__ == "__main__":
    main()
