"""The GLUE submission bundle: the best run of every task, checked, zipped flat.

  python -m bert_adapters.cli.glue_submission --runs_dir=runs/glue_adapters_large \
    --data_dir=$GLUE_DIR --output=submission.zip [--allow_missing]

What `--runs_dir` may hold, at any depth (one folder per task is the usual
layout, `runs/<sweep>/<TASK>/`, but the names do not matter):
  - a sweep's directory (it has `best.json`, see `bert_adapters/sweep/`):
    its best trial is a candidate, and the walk does not go inside it;
  - a single run's output directory (`run_config.json` and
    `eval_results.json`, as `run_classifier.py --do_eval` writes them): a
    candidate.
Each candidate's task is the one it was trained on. Per task the best
candidate wins, by the sweep's rule (`selection.TIE_BREAK`: the primary
metric on the primary eval split, then the lower eval_loss), a full tie going
to the first path in sorted order.

The bundle holds the 11 files the GLUE server expects, each from the best run
of the task that predicts it (AX.tsv from the MNLI run). Every file is checked
against its test split (header, row count, index order, label strings) with
`glue_files.validate_submission`. The test split comes from `--data_dir` (a
GLUE root) when given; otherwise from the data the run itself read, as its
`run_config.json` records it (its `--data_dir` folder, AX beside the MNLI
folder; TFDS only for a run that read TFDS). A file that no run has is an
error naming it, unless `--allow_missing`. The zip is written atomically, its
files at the top level; its folder is created if needed.
"""

import dataclasses
import io
import os
import zipfile

import tensorflow as tf
from absl import app, flags, logging

from bert_adapters import data, io_utils
from bert_adapters.tasks import glue_files
from bert_adapters.cli import terminal
from bert_adapters.cli.flags import parse_flags
from bert_adapters.sweep import selection

BEST_FILE = "best.json"
RUN_FILES = ("run_config.json", "eval_results.json")
_MAX_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A trained run of a task that may supply its submission files.

    Args:
        task: the task's name (`"MNLI"`).
        run_dir: the run's output directory, holding the submission files.
        metrics: its eval results (the primary metric, eval_loss, ...).
        source: where it was found: the sweep directory or the run directory.
    """

    task: str
    run_dir: str
    metrics: dict
    source: str

    @property
    def score(self):
        return self.metrics.get(data.get_task(self.task).primary_metric)


def expected_files():
    """{file name: (task, split, task whose model predicts it)} for the 11 GLUE files."""
    files = {}
    for task in data.GLUE_TASKS:
        for split, name in task.test_files.items():
            files[name] = (task, split, task.predicted_by or task.name)
    return files


def find_candidates(runs_dir):
    """Every sweep best and single run under `runs_dir` (see the module docstring)."""
    if not tf.io.gfile.isdir(runs_dir):
        raise FileNotFoundError(f"--runs_dir {runs_dir} is not a directory")
    found = []
    _walk(runs_dir.rstrip("/"), found, depth=0)
    return found


def _walk(directory, found, depth):
    names = {entry.rstrip("/") for entry in tf.io.gfile.listdir(directory)}
    if BEST_FILE in names:
        candidate = _sweep_candidate(directory)
        if candidate is not None:
            found.append(candidate)
        return
    if all(name in names for name in RUN_FILES):
        candidate = _run_candidate(directory)
        if candidate is not None:
            found.append(candidate)
        return
    if depth >= _MAX_DEPTH:
        return
    for name in sorted(names):
        path = io_utils.join(directory, name)
        if not name.startswith(".") and tf.io.gfile.isdir(path):
            _walk(path, found, depth + 1)


def _sweep_candidate(directory):
    best = io_utils.read_json(io_utils.join(directory, BEST_FILE))
    if _glue_task(best.get("task"), directory) is None:
        return None
    return Candidate(task=best["task"], run_dir=io_utils.join(directory, best["trial_dir"]),
                     metrics=best["metrics"], source=directory)


def _run_candidate(directory):
    run_config = io_utils.read_json(io_utils.join(directory, RUN_FILES[0]))
    task = _glue_task(run_config.get("task"), directory)
    if task is None:
        return None
    metrics = io_utils.read_json(io_utils.join(directory, RUN_FILES[1]))
    if task.primary_metric not in metrics:
        logging.warning("%s: eval_results.json has no %s: not a candidate", directory,
                        task.primary_metric)
        return None
    return Candidate(task=task.name, run_dir=directory, metrics=metrics, source=directory)


def _glue_task(name, directory):
    try:
        task = data.get_task(name)
    except ValueError:
        logging.info("%s: task %r is not a GLUE task: skipped", directory, name)
        return None
    return None if task.train_split is None else task


def best_per_task(candidates):
    """{task name: the best Candidate}; a full tie goes to the first path in sorted order."""
    best = {}
    for candidate in sorted(candidates, key=lambda c: c.source):
        metric = data.get_task(candidate.task).primary_metric
        key = selection.rank_key(candidate.metrics, metric)
        if not key[0]:
            continue
        current = best.get(candidate.task)
        if current is None or key > selection.rank_key(current.metrics, metric):
            best[candidate.task] = candidate
    return best


def build_bundle(runs_dir, output, data_dir=None, tfds_data_dir=None, allow_missing=False):
    """Collects, checks and zips the submission; returns the manifest.

    Args:
        runs_dir: where the runs and sweeps are.
        output: the zip to write (local or gs://).
        data_dir: the GLUE root holding each task's test file; None: the data
            each run read (its run_config.json), TFDS for runs that read TFDS.
        tfds_data_dir: TFDS's data directory for those runs (default: the
            one the run used).
        allow_missing: write the files found even if some are missing.

    Returns:
        [{file, task, run_dir, metric, score, rows}] of the files in the zip,
        and a list of the missing files with the reason.

    Raises:
        ValueError: a file fails its check (all failures are listed), or files
            are missing without `allow_missing`, or nothing was found.
    """
    best = best_per_task(find_candidates(runs_dir))
    manifest, missing, problems = [], [], []
    for name, (task, split, owner) in expected_files().items():
        candidate = best.get(owner)
        if candidate is None:
            missing.append(f"{name} (no {owner} run under {runs_dir})")
            continue
        path = io_utils.join(candidate.run_dir, name)
        if not io_utils.exists(path):
            missing.append(f"{name} (the best {owner} run, {candidate.run_dir}, has no {name})")
            continue
        try:
            indices = _test_split(task, split, candidate, data_dir, tfds_data_dir).indices
        except (ValueError, FileNotFoundError, OSError) as err:
            problems.append(f"{name}: cannot read the {task.name} {split} split to check it: "
                            f"{err}")
            continue
        try:
            rows = glue_files.validate_submission(path, task, split, indices)
        except ValueError as err:
            problems.append(str(err))
            continue
        metric = data.get_task(owner).primary_metric
        manifest.append({"file": name, "task": task.name, "run_dir": candidate.run_dir,
                         "metric": metric, "score": candidate.score, "rows": rows})
    if problems:
        raise ValueError(f"{len(problems)} submission file(s) failed their check:\n  "
                         + "\n  ".join(problems))
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} of {len(expected_files())} GLUE files are missing "
                         f"(pass --allow_missing to zip the others):\n  " + "\n  ".join(missing))
    if not manifest:
        raise ValueError(f"no submission file found under {runs_dir}")
    _write_zip(output, [m["file"] for m in manifest],
               {m["file"]: io_utils.join(m["run_dir"], m["file"]) for m in manifest})
    return manifest, missing


def _test_split(task, split, candidate, data_dir, tfds_data_dir):
    """The test split a candidate's file is checked against (see the module docstring)."""
    if data_dir:
        return data.load_split(task, split, data_dir, tfds_data_dir)
    config_path = io_utils.join(candidate.run_dir, RUN_FILES[0])
    if not io_utils.exists(config_path):
        raise FileNotFoundError(f"{config_path} not found, so the data the run read is "
                                f"unknown; pass --data_dir=GLUE_ROOT")
    settings = io_utils.read_json(config_path).get("settings") or {}
    run_data = settings.get("data_dir")
    if not run_data:  # The run read TFDS.
        return data.load_split(task, split, None,
                               tfds_data_dir or settings.get("tfds_data_dir"))
    if task.name == candidate.task:
        return data.load_split(task, split, run_data)
    # A task another run predicts (AX by MNLI): beside that run's folder, or
    # in the GLUE root it named.
    root = run_data.rstrip("/")
    for folder in (root, os.path.dirname(root)):
        if folder and io_utils.exists(io_utils.join(folder, task.folder)):
            return data.load_split(task, split, io_utils.join(folder, task.folder))
    raise FileNotFoundError(f"no {task.folder}/ folder beside {run_data}, the data of "
                            f"{candidate.run_dir}; pass --data_dir=GLUE_ROOT")


def _write_zip(output, names, paths):
    """The files flat at the zip's top level; written atomically, its folder created."""
    if io_utils.exists(output) and io_utils.isdir(output):
        raise ValueError(f"--output {output} is a directory; name the zip file to write")
    folder = os.path.dirname(output.rstrip("/"))
    if folder and not io_utils.exists(folder):
        io_utils.makedirs(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in sorted(names):
            with tf.io.gfile.GFile(paths[name], "rb") as f:
                bundle.writestr(name, f.read())
    io_utils.write_bytes(output, buffer.getvalue())


def format_manifest(manifest, missing):
    lines = [f"{'file':<12} {'rows':>7}  {'task score':<22} run"]
    for m in sorted(manifest, key=lambda m: m["file"]):
        score = f"{m['metric']} {m['score']:.4f}"
        lines.append(f"{m['file']:<12} {m['rows']:>7}  {score:<22} {m['run_dir']}")
    lines += [f"missing: {reason}" for reason in missing]
    return "\n".join(lines)


def _define_flags():
    flags.DEFINE_string("runs_dir", None, "Where the sweeps (best.json) and single runs are.")
    flags.DEFINE_string("output", None, "The zip to write, e.g. submission.zip.")
    flags.DEFINE_string("data_dir", None, "The GLUE root holding every task's test file "
                        "(to check the files); without it, the data each run read.")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory, for runs that read TFDS "
                        "(default: the run's own).")
    flags.DEFINE_bool("allow_missing", False, "Zip the files found even if some are missing.")
    flags.mark_flags_as_required(["runs_dir", "output"])


def main(argv):
    del argv
    values = flags.FLAGS
    terminal.setup_cli(values.verbosity)
    try:
        manifest, missing = build_bundle(values.runs_dir, values.output, values.data_dir,
                                         values.tfds_data_dir, values.allow_missing)
    except (ValueError, OSError, tf.errors.NotFoundError,
            tf.errors.PermissionDeniedError) as err:
        terminal.fail("glue_submission", getattr(err, "message", None) or err)
    print(format_manifest(manifest, missing))
    print(f"Wrote {values.output}: {len(manifest)} files")


def run():
    """The command: `python -m bert_adapters.glue_submission`."""
    _define_flags()
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
