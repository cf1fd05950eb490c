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

`--layouts` lays each step's windows out in one or more ways, each setting
trained under each: `grouped` (`--group_by_length`, the default), `dynamic`
(BERT's random batches padded to their longest window) or `packed` (BERT's
random batches, `--pack_sequences`); the padded and real tokens per step are
reported beside windows/s. The trainer's windows/s covers every step, the
first one's tracing included; "steady windows/s" covers the steps between
the last two logged ones (every 20th), so `--steps=40` times steps 21-40:

  .venv/bin/python benchmarks/squad_dev_split.py --output_dir=runs/squad_pack \
      --speed_only --settings=adapters64 --layouts=dynamic,packed --steps=40 --rounds=2
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
LAYOUTS = {"grouped": ["--group_by_length"], "dynamic": [], "packed": ["--pack_sequences"]}
MAX_QUERY_LENGTH = 64  # run_squad.py's default


def tokens_per_step(args, data_dir, layout):
    """(padded, real) tokens per training step, averaged over the run's steps.

    The trainer's own windows and step index matrix (seed 42, as
    `run_squad.py`'s default), padded as `layout` pads them.
    """
    sys.path.insert(0, REPO)
    import bert_adapters  # pylint: disable=import-outside-toplevel
    from bert_adapters.tasks.squad import SquadConfig  # pylint: disable=import-outside-toplevel
    from bert_adapters.training import input_pipeline, packing  # pylint: disable=import-outside-toplevel

    config = SquadConfig(train_file=f"{data_dir}/train.json", do_train=True,
                         max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
                         max_query_length=MAX_QUERY_LENGTH)
    tokenizer = bert_adapters.load_tokenizer("minilm_l6", max_seq_length=args.max_seq_length)
    features = config.task_kind().load_splits(tokenizer)["train"].features
    lengths = input_pipeline.sequence_lengths(features)
    rows = input_pipeline.train_index_matrix(
        len(lengths), args.batch_size, args.steps, config.seed,
        lengths=lengths if layout == "grouped" else None)
    if layout == "packed":
        padded = packing.packed_tokens(features, rows, args.max_seq_length)
    else:
        padded = args.batch_size * input_pipeline.batch_widths(rows, lengths,
                                                                args.max_seq_length)
    return float(padded.mean()), float(lengths[rows].sum(axis=1).mean())


def steady_windows_per_second(output_dir, batch_size):
    """Windows/s between the last two steps in the run's TensorBoard log (None: fewer)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    times = {}
    for path in tf.io.gfile.glob(os.path.join(output_dir, "logs", "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            if any(value.tag == "loss" for value in event.summary.value):
                times[event.step] = event.wall_time
    if len(times) < 2:
        return None
    first, last = sorted(times)[-2:]
    return batch_size * (last - first) / (times[last] - times[first])


def run_setting(name, layout, args, data_dir):
    out = os.path.join(args.output_dir, f"{name}_{layout}")
    if os.path.exists(out):  # A fresh run each round (no resume).
        shutil.rmtree(out)
    cmd = [sys.executable, os.path.join(REPO, "run_squad.py"), "--encoder=minilm_l6",
           f"--train_file={data_dir}/train.json", f"--predict_file={data_dir}/dev.json",
           f"--max_seq_length={args.max_seq_length}", f"--doc_stride={args.doc_stride}",
           f"--train_batch_size={args.batch_size}", "--eval_batch_size=64",
           f"--max_train_steps={args.steps}", "--num_train_epochs=10", "--optimizer=adamw",
           f"--max_query_length={MAX_QUERY_LENGTH}", *LAYOUTS[layout], "--do_train",
           f"--output_dir={out}",
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
    return {"setting": name, "layout": layout, "load_average": os.getloadavg()[0],
            "exact_match": results["exact_match"], "f1": results["f1"],
            "num_questions": results["num_questions"],
            "trained_params": params["trained_params"],
            "trained_percent_of_base": params["trained_percent_of_base"],
            "examples_per_second": float(speed[-1]) if speed else None,
            "steady_examples_per_second": steady_windows_per_second(out, args.batch_size),
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
    parser.add_argument("--layouts", default="grouped",
                        help=f"Comma-separated, of {sorted(LAYOUTS)}: how steps pad (see above).")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--speed_only", action="store_true",
                        help="Train only (no prediction): examples/s and peak RSS.")
    args = parser.parse_args()
    data_dir = os.path.join(args.output_dir, "data")
    subprocess.run([sys.executable, "-m", "bert_adapters.data.squad_split",
                    f"--input={DATA_DIR}/squad/v1.1/dev-v1.1.json",
                    f"--train_articles={args.train_articles}", f"--output_dir={data_dir}"],
                   check=True, cwd=REPO)
    runs_of = [(name, layout) for name in args.settings.split(",")
               for layout in args.layouts.split(",")]
    for name, layout in runs_of:
        if name not in SETTINGS or layout not in LAYOUTS:
            parser.error(f"unknown setting {name!r} or layout {layout!r}")
    tokens = {layout: tokens_per_step(args, data_dir, layout)
              for layout in args.layouts.split(",")}
    order = []
    for r in range(args.rounds):
        order += runs_of if r % 2 == 0 else runs_of[::-1]
    runs = {}
    for name, layout in order:
        result = run_setting(name, layout, args, data_dir)
        result["padded_tokens_per_step"], result["real_tokens_per_step"] = tokens[layout]
        runs.setdefault(f"{name} {layout}", []).append(result)
        print(f"  {name} {layout}: EM {result['exact_match']:.1f} F1 {result['f1']:.1f} "
              f"{result['examples_per_second']} ex/s (steady "
              f"{result['steady_examples_per_second']}) {result['peak_rss_gb']:.2f} GB "
              f"load {result['load_average']:.1f}", file=sys.stderr)
    first = runs[" ".join(runs_of[0])][0]
    print(f"\nSQuAD v1.1 dev, articles {args.train_articles + 1}-48 "
          f"({first['num_questions']} questions), MiniLM-L6, {args.steps} steps "
          f"of {args.batch_size} windows of {args.max_seq_length} tokens (stride "
          f"{args.doc_stride}), AdamW; {os.cpu_count()} logical CPUs, load: the 1-minute "
          f"load average as each run ended\n")
    print("| setting | layout | trained params | % of base | EM | F1 | train windows/s "
          "| steady windows/s | padded tokens/step | real tokens/step | peak RSS GB | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def steady(rs):
        values = [r["steady_examples_per_second"] for r in rs]
        return "-" if None in values else f"{statistics.median(values):.1f}"

    for rs in runs.values():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        loads = [r["load_average"] for r in rs]
        print(f"| {rs[0]['setting']} | {rs[0]['layout']} | {rs[0]['trained_params']:,} "
              f"| {rs[0]['trained_percent_of_base']:.2f} | {med('exact_match'):.1f} "
              f"| {med('f1'):.1f} | {med('examples_per_second'):.1f} "
              f"| {steady(rs)} "
              f"| {rs[0]['padded_tokens_per_step']:.0f} | {rs[0]['real_tokens_per_step']:.0f} "
              f"| {med('peak_rss_gb'):.2f} | {min(loads):.1f}-{max(loads):.1f} |")
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
