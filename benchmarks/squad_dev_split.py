"""SQuAD v1.1 on the embedded encoder: adapters (sizes 8, 64) vs full fine-tuning.

Only SQuAD's dev file exists here, so it is split by article (train on the
first 40 articles, evaluate on the last 8), then every setting trains for
the same number of steps through `run_squad.py`, each in its own process:

  .venv/bin/python benchmarks/squad_dev_split.py --output_dir=runs/squad_bench

Reported per setting: dev exact match and F1 (official v1.1 metric), trained
parameters, training examples (windows) per second as the trainer logs it,
and the process's peak RSS. `--settings` picks a subset; `--rounds=2` runs
them twice in A B B A order and reports medians; `--speed_only --steps=30` times
training alone.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("BERT_ADAPTERS_DATA", os.path.join(REPO, "..", "shared", "data"))
SETTINGS = {
    "adapters8": ["--tuning=adapters", "--adapter_size=8", "--learning_rate=3e-3"],
    "adapters64": ["--tuning=adapters", "--adapter_size=64", "--learning_rate=3e-3"],
    "full": ["--tuning=full", "--learning_rate=1e-4"],
}


def run_setting(name, args, data_dir):
    out = os.path.join(args.output_dir, name)
    if os.path.exists(out):  # A fresh run each round (no resume).
        shutil.rmtree(out)
    cmd = [sys.executable, os.path.join(REPO, "run_squad.py"), "--encoder=minilm_l6",
           f"--train_file={data_dir}/train.json", f"--predict_file={data_dir}/dev.json",
           f"--max_seq_length={args.max_seq_length}", f"--doc_stride={args.doc_stride}",
           f"--train_batch_size={args.batch_size}", "--eval_batch_size=64",
           f"--max_train_steps={args.steps}", "--num_train_epochs=10", "--optimizer=adamw",
           "--group_by_length", "--do_train", f"--output_dir={out}",
           *([] if args.speed_only else ["--do_predict"]),
           "--save_checkpoints_steps=100000", *SETTINGS[name]]
    # A fresh parent per setting: its children's peak RSS is this run's alone.
    wrapper = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
               "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "file=sys.stderr); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    stderr = proc.stderr
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    speed = re.findall(r"Trained \d+ steps in [\d.]+ s \(([\d.]+) examples/s\)", stderr)
    results = {"exact_match": float("nan"), "f1": float("nan"), "num_questions": 0}
    if not args.speed_only:
        with open(os.path.join(out, "eval_results.json")) as f:
            results = json.load(f)
    with open(os.path.join(out, "params.json")) as f:
        params = json.load(f)
    return {"setting": name, "exact_match": results["exact_match"], "f1": results["f1"],
            "num_questions": results["num_questions"],
            "trained_params": params["trained_params"],
            "trained_percent_of_base": params["trained_percent_of_base"],
            "examples_per_second": float(speed[-1]) if speed else None,
            "peak_rss_gb": int(re.findall(r"PEAK_RSS_KB (\d+)", stderr)[-1]) / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--settings", default="adapters8,adapters64,full")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_seq_length", type=int, default=192)
    parser.add_argument("--doc_stride", type=int, default=96)
    parser.add_argument("--train_articles", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--speed_only", action="store_true",
                        help="Train only (no prediction): examples/s and peak RSS.")
    args = parser.parse_args()
    data_dir = os.path.join(args.output_dir, "data")
    subprocess.run([sys.executable, "-m", "bert_adapters.data.squad_split",
                    f"--input={DATA_DIR}/squad/v1.1/dev-v1.1.json",
                    f"--train_articles={args.train_articles}", f"--output_dir={data_dir}"],
                   check=True, cwd=REPO)
    names = args.settings.split(",")
    order = []
    for r in range(args.rounds):
        order += names if r % 2 == 0 else names[::-1]
    runs = {}
    for i, name in enumerate(order):
        result = run_setting(name, args, data_dir)
        runs.setdefault(name, []).append(result)
        print(f"  {name}: EM {result['exact_match']:.1f} F1 {result['f1']:.1f} "
              f"{result['examples_per_second']} ex/s {result['peak_rss_gb']:.2f} GB",
              file=sys.stderr)
    print(f"\nSQuAD v1.1 dev, articles {args.train_articles + 1}-48 "
          f"({runs[names[0]][0]['num_questions']} questions), MiniLM-L6, {args.steps} steps "
          f"of {args.batch_size} windows of {args.max_seq_length} tokens (stride "
          f"{args.doc_stride}), AdamW\n")
    print("| setting | trained params | % of base | EM | F1 | train windows/s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        rs = runs[name]
        med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        print(f"| {name} | {rs[0]['trained_params']:,} | {rs[0]['trained_percent_of_base']:.2f} "
              f"| {med('exact_match'):.1f} | {med('f1'):.1f} | {med('examples_per_second'):.1f} "
              f"| {med('peak_rss_gb'):.2f} |")
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
