"""`python -m bert_adapters.analysis {ablate,init_scale,tradeoff,adapter_layers} ...`: figures.

  ablate          --task_dir RUN --output_dir OUT [--data_dir DIR] [--metric M]
                  [--eval_batch_size N]
  init_scale      --runs_dir SWEEP [SWEEP ...] --output OUT.png [--metric M]
  tradeoff        --runs_dir SWEEP [SWEEP ...] --output_dir OUT [--metric M]
                  [--select mean|first_seed]
  adapter_layers  --runs_dir SWEEP [SWEEP ...] --output_dir OUT [--metric M]

Bad input (a missing or malformed file, a run without adapters) is reported
as one line naming the file and what was expected, exit status 2, and
nothing written.
"""

import argparse
import sys

from absl import logging

from bert_adapters.analysis import AnalysisError


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m bert_adapters.analysis",
        description="The analysis figures of Houlsby et al. (2019), section 3.6.")
    commands = parser.add_subparsers(dest="command", required=True)

    ablate = commands.add_parser(
        "ablate", help="Dev metric with the adapters of every span of layers switched off.")
    ablate.add_argument("--task_dir", required=True,
                        help="A training run's output directory (run_config.json, "
                             "task_artifact/).")
    ablate.add_argument("--output_dir", required=True,
                        help="Where ablation.json and ablation.png go.")
    ablate.add_argument("--data_dir", default=None,
                        help="Read the dev data from here instead of where the run read it "
                             "(a GLUE task folder or root; a SQuAD dev JSON or its folder).")
    ablate.add_argument("--metric", default=None,
                        help="The metric to report (default: the task's primary metric).")
    ablate.add_argument("--eval_batch_size", type=int, default=None,
                        help="Evaluation batch size (default: the run's).")

    init_scale = commands.add_parser(
        "init_scale", help="Dev metric against the adapters' init std (figure 6, right).")
    init_scale.add_argument("--runs_dir", nargs="+", required=True,
                            help="Sweep directories over adapter_init_scale.")
    init_scale.add_argument("--output", required=True,
                            help="The PNG to write; the CSV goes beside it.")
    init_scale.add_argument("--metric", default=None,
                            help="The metric to plot (default: each sweep's own).")

    tradeoff = commands.add_parser(
        "tradeoff", help="Best dev metric against trained parameters (figures 3 and 4).")
    tradeoff.add_argument("--runs_dir", nargs="+", required=True,
                          help="Sweep directories (adapter sizes, top-k, LayerNorm, full).")
    tradeoff.add_argument("--output_dir", required=True,
                          help="Where tradeoff.png and tradeoff.csv go.")
    tradeoff.add_argument("--metric", default=None,
                          help="The metric to plot (default: each sweep's own).")
    tradeoff.add_argument("--select", default="mean", choices=("mean", "first_seed"),
                          help="How each point's rate is picked: the best mean over seeds, "
                               "or the best run of the lowest seed (a rate grid at one "
                               "seed, more seeds at the chosen rate).")
    tradeoff.add_argument("--methods", default=None,
                          help="Only these, comma-separated: a method (adapters, top_k, "
                               "layer_norm, full) for all its variants, or method:variant "
                               "(adapters:64, top_k:3). Default: every method found.")

    layers = commands.add_parser(
        "adapter_layers", help="Dev metric and step time against the lowest adapted layer "
                               "(sweeps over --adapter_layers).")
    layers.add_argument("--runs_dir", nargs="+", required=True,
                        help="Sweep directories over adapter_layers "
                             "(hparams/minilm_adapter_layers.py).")
    layers.add_argument("--output_dir", required=True,
                        help="Where adapter_layers.png and adapter_layers.csv go.")
    layers.add_argument("--metric", default=None,
                        help="The metric to plot (default: each sweep's own).")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.set_verbosity(logging.INFO)
    try:
        if args.command == "ablate":
            if args.eval_batch_size is not None and args.eval_batch_size < 1:
                raise AnalysisError(f"--eval_batch_size must be positive, got "
                                    f"{args.eval_batch_size}")
            from bert_adapters.analysis import ablation
            result = ablation.write_ablation(args.task_dir, args.output_dir, args.data_dir,
                                             args.metric, args.eval_batch_size)
            print(f"{result['task']} {result['split']}: {result['metric']} "
                  f"{result['full']:.4f} with every adapter on; all "
                  f"{result['num_layers']} layers ablated: {result['matrix'][0][-1]:.4f} "
                  f"({result['wall_seconds']:.0f} s, {result['traces']} trace(s))")
            print(f"Wrote {args.output_dir}/{ablation.JSON_FILE} and {ablation.PNG_FILE}")
        elif args.command == "init_scale":
            from bert_adapters.analysis import init_scale
            rows = init_scale.write_init_scale(args.runs_dir, args.output, args.metric)
            print(f"Wrote {args.output} and its CSV: {len(rows)} points")
        elif args.command == "adapter_layers":
            from bert_adapters.analysis import adapter_layers
            rows = adapter_layers.write_adapter_layers(args.runs_dir, args.output_dir,
                                                       args.metric)
            print(f"Wrote {args.output_dir}/{adapter_layers.PNG_FILE} and "
                  f"{adapter_layers.CSV_FILE}: {len(rows)} spans")
        else:
            from bert_adapters.analysis import tradeoff
            rows, bands = tradeoff.write_tradeoff(args.runs_dir, args.output_dir, args.metric,
                                                  args.select, args.methods)
            print(f"Wrote {args.output_dir}/{tradeoff.PNG_FILE} and {tradeoff.CSV_FILE}: "
                  f"{len(rows)} points" + (f", {len(bands)} bands" if bands else ""))
    except (AnalysisError, FileNotFoundError, ValueError) as err:
        print(f"analysis {args.command}: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
