"""`python -m bert_adapters.bank export|add|predict`: build, grow and query a task bank.

    python -m bert_adapters.bank export --task_dirs runs/rte runs/sst2 --output_dir banks/glue
    python -m bert_adapters.bank add --bank banks/glue --task_dir runs/stsb
    python -m bert_adapters.bank predict --bank banks/glue --input requests.jsonl \\
        --output predictions.jsonl

A task directory is a `run_classifier.py` or `run_squad.py` output directory
or its `task_artifact/`; `NAME=DIR` gives the task a name of its own. Bad input ends
with a readable message on stderr and exit code 2 (for `predict`: after the
good lines were answered and the output written).
"""

import argparse
import sys

import tensorflow as tf

from bert_adapters import io_utils


def _named_dir(value):
    """`DIR` or `NAME=DIR` -> (name or None, DIR)."""
    name, sep, directory = value.partition("=")
    if sep and name and "/" not in name and not io_utils.exists(value):
        return name, directory
    return None, value


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m bert_adapters.bank",
        description="One frozen BERT serving many tasks' adapters (Houlsby et al., 2019).")
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="Write task artifacts and their base as one "
                                 "SavedModel.")
    export.add_argument("--task_dirs", nargs="+", required=True, metavar="[NAME=]DIR",
                        help="Run output directories (or their task_artifact/), one per task.")
    export.add_argument("--output_dir", required=True, help="The bank directory to write.")
    export.add_argument("--base", help="The base encoder (alias, TF Hub handle, checkpoint or "
                        "HF directory); default: the one the first artifact names.")
    export.add_argument("--max_seq_length", type=int,
                        help="Tokens per example; default: the longest the tasks were trained "
                        "with.")
    export.add_argument("--overwrite", action="store_true",
                        help="Replace an existing --output_dir.")

    add = commands.add_parser("add", help="Add a task to an exported bank; the others' outputs "
                              "stay bit for bit the same.")
    add.add_argument("--bank", required=True, help="A directory written by `export`.")
    add.add_argument("--task_dir", required=True, metavar="[NAME=]DIR",
                     help="The new task's run output directory (or task_artifact/).")
    add.add_argument("--base", help="Where to read the base from, if not where bank.json says.")

    predict = commands.add_parser("predict", help="Answer JSON-lines requests with a bank.")
    predict.add_argument("--bank", required=True, help="A directory written by `export`.")
    predict.add_argument("--input", required=True,
                         help='JSON lines {"task": ..., "text_a": ..., "text_b": ...}.')
    predict.add_argument("--output", required=True, help="The JSON-lines file to write.")
    predict.add_argument("--batch_size", type=int, default=32, help="Requests per forward pass.")
    return parser


def run(args):
    """Runs one parsed command; returns the exit code."""
    from bert_adapters.bank import jsonl_requests
    from bert_adapters.bank.task_bank import TaskBank

    if args.command == "export":
        bank = TaskBank.load(args.base, [_named_dir(d) for d in args.task_dirs],
                             max_seq_length=args.max_seq_length)
        bank.export(args.output_dir, overwrite=args.overwrite)
        print(f"Wrote {args.output_dir}: {len(bank.tasks)} tasks ({', '.join(bank.task_names)}) "
              f"on one base, max_seq_length {bank.max_seq_length}")
    elif args.command == "add":
        name, directory = _named_dir(args.task_dir)
        bank = TaskBank.from_directory(args.bank, base=args.base)
        bank.add(directory, name)
        bank.export(args.bank, overwrite=True)
        print(f"Added {bank.tasks[-1].name} to {args.bank}: {', '.join(bank.task_names)}")
    else:
        if args.batch_size < 1:
            raise ValueError(f"--batch_size must be positive, got {args.batch_size}")
        answered, errors = jsonl_requests.predict_file(args.bank, args.input, args.output,
                                                       args.batch_size)
        print(f"Wrote {args.output}: {answered} predictions, {len(errors)} lines with errors")
        if errors:
            for error in errors:
                print(f"bank predict: error: {error}", file=sys.stderr)
            return 2
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError, tf.errors.OpError) as err:
        # Bad input: a readable message and exit code 2, no traceback.
        print(f"bank {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
