"""The sweep runner: every trial of an hparams file through `trainer.run`.

  python run_classifier.py --hparams=hparams/minilm_smoke.py --task_name=RTE \
    --data_dir=$GLUE_DIR/RTE --output_dir=runs/rte_smoke

The output directory:
  sweep.json       what the directory sweeps: the hparams file's settings with
                   the explicit flags, and every trial in order
  trials/<trial>/  the trainer's output directory of one trial (run_config.json,
                   params.json, eval_results.json, checkpoints/,
                   task_artifact/, the GLUE submission files), plus
                   trial_result.json once the trial has finished
  results.jsonl    one line per finished trial, in sweep order: trial_id,
                   hparams, metrics, trained_params, wall_seconds
  summary.md       every trial in a table, the best marked; the primary metric
                   across seeds
  best.json        the best trial (selection.TIE_BREAK) with its artifact and
                   submission files, as paths relative to the directory
  keras_tuner/     KerasTuner's oracle.json and trial_*/trial.json

Settings, lowest precedence first: the flags' defaults; the sweep defaults
(do_train, do_eval and do_predict on); the hparams file's `get_config()`;
flags given explicitly on the command line; the trial's entry of
`get_sweep()`. A flag given explicitly for a field the sweep varies is an
error: the sweep would silently ignore it, or it would silently flatten the
sweep.

Trials are named from their swept values (`lr=0.0003,seed=1`), so the same
sweep always maps a trial to the same directory. Restarting the same command
resumes: a trial with a trial_result.json is not run again, an interrupted
trial is handed out again (KerasTuner's retry queue) and the trainer resumes
it from its last checkpoint, and trials never started run. A sweep whose
definition differs from the directory's sweep.json is refused unless
--overwrite: the new sweep then replaces the old one, trials it no longer has
or whose settings changed are deleted, and identical trials are kept.

Across machines (see `tuner.py`): start the same command on every machine
with `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` set, one with
`KERASTUNER_TUNER_ID=chief` (it serves the oracle and runs no trial) and the
others with `tuner0`, `tuner1`, ...; all share one --output_dir (a shared
file system or gs://). Each worker writes only its trials' directories; the
process holding the oracle (the chief, or the only process) is the one writer
of sweep.json, results.jsonl, summary.md and best.json, rebuilt from the
trial_result.json files after every trial, under the oracle's lock. A worker
that dies keeps its trial assigned: restart it with the same
`KERASTUNER_TUNER_ID` and it gets that trial back and resumes it. Stop the
workers before restarting a chief (a reloaded chief hands out again the
trials that were running).
"""

import dataclasses
import json
import math
import os
import time

import keras
import keras_tuner
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.model import trainable
from bert_adapters.sweep import selection
from bert_adapters.sweep.hparams_file import DEFAULT_RUNNER, config_class, load_hparams
from bert_adapters.sweep.tuner import SweepOracle, SweepTuner
from bert_adapters.training import trainer, trial_cache
from bert_adapters.training import distribution
from bert_adapters.tasks.run_config import RunConfig, same_setting

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
TUNER_DIR = "keras_tuner"
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.md"
BEST_FILE = "best.json"
TRIAL_RESULT_FILE = "trial_result.json"
REPORT_FILES = (RESULTS_FILE, SUMMARY_FILE, BEST_FILE)
# How long a worker started before its chief waits for the chief's sweep.json.
WORKER_WAIT_SECONDS = 600
# A sweep trains and evaluates every trial; predicting the test split makes
# every trial's submission files available to the bundle.
SWEEP_DEFAULTS = {"do_train": True, "do_eval": True, "do_predict": True}
# Settings whose change makes it another sweep: what the trainer checks on
# resume, plus what decides the selection and the predictions.
SELECTION_FIELDS = ("dev_file", "test_file", "predict_file", "do_predict")
RESULT_KEYS = ("trial_id", "hparams", "metrics", "trained_params", "wall_seconds")


def compared_fields(cls):
    """The fields of config class `cls` whose change makes another sweep."""
    names = {f.name for f in dataclasses.fields(cls)}
    return tuple(cls.TRAINING_FIELDS) + tuple(f for f in SELECTION_FIELDS if f in names)


def _config_defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One trial: its place in the sweep, name, swept values and full settings."""

    index: int
    name: str
    hparams: dict
    config: RunConfig


def resolve_trials(hparams, defaults=None, explicit=None):
    """Every trial's `RunConfig`, by the precedence in the module docstring.

    Args:
        hparams: a loaded `Hparams`.
        defaults: {field: value} below everything (the flags' defaults).
        explicit: {field: value} given explicitly (flags on the command line).

    Returns:
        (base, trials): the settings every trial starts from (a dict), and
        [Trial] in the sweep's order.
    """
    defaults, explicit = dict(defaults or {}), dict(explicit or {})
    conflicts = [f for f in hparams.swept_fields if f in explicit]
    if conflicts:
        field = conflicts[0]
        values = sorted({repr(t[field]) for t in hparams.sweep if field in t})
        raise ValueError(f"--{field}={explicit[field]!r} conflicts with {hparams.path}, which "
                         f"sweeps {field} over {', '.join(values)}; drop the flag or edit the "
                         f"sweep")
    for field in sorted(set(explicit) & set(hparams.config)):
        logging.info("--%s=%r overrides %s's %s=%r", field, explicit[field], hparams.path,
                     field, hparams.config[field])
    cls = config_class(hparams.runner)
    base = {**_config_defaults(cls), **defaults, **SWEEP_DEFAULTS, **hparams.config, **explicit}
    trials = []
    for index, (name, swept) in enumerate(zip(hparams.trial_names, hparams.sweep)):
        where = f"{hparams.path}: get_sweep()[{index}] ({name})"
        try:
            config = cls.from_json({**base, **swept})
            trainable.check_tuning(config.tuning, config.adapter_size, 10**6,
                                   config.num_tuned_layers, config.adapter_layers)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
        if not (config.do_train and config.do_eval):
            raise ValueError(f"{where}: a sweep trains and evaluates every trial "
                             f"(do_train and do_eval must stay on)")
        trials.append(Trial(index, name, dict(swept), config))
    return base, trials


class Sweep:
    """One sweep's output directory: its definition, trials and reports.

    Args:
        hparams: the loaded hparams file.
        base, trials: `resolve_trials(hparams, ...)`.
        output_dir: the sweep's directory (local or gs://).
        step_callback: optional `fn(trial_name, global_step)` after every
            training step (tests interrupt a sweep with it).
        strategy: the `tf.distribute.Strategy` of every trial; default: the
            one the settings name, made when the first trial runs.
    """

    def __init__(self, hparams, base, trials, output_dir, step_callback=None, strategy=None):
        self.hparams = hparams
        self.base = dict(base)
        self.trials = list(trials)
        self.by_name = {t.name: t for t in self.trials}
        self.output_dir = output_dir
        self.step_callback = step_callback
        self.strategy = strategy
        self.kind = self.trials[0].config.task_kind()
        self.metric = self.kind.primary_metric
        self.config_class = type(self.trials[0].config)
        self.compared_fields = compared_fields(self.config_class)
        self._definition_checked = False
        # What this process's trials share: the base checkpoint, the tokenized
        # data, and models of one shape with their traced functions.
        self.cache = trial_cache.TrialCache()

    # === Layout ===
    def path(self, *parts):
        return io_utils.join(self.output_dir, *parts)

    def trial_dir(self, name):
        return self.path(TRIALS_DIR, name)

    def definition(self):
        """What sweep.json records: changing any of it makes another sweep."""
        return {
            "hparams_file": self.hparams.path, "runner": self.hparams.runner,
            "task": self.kind.task_name, "metric": self.metric,
            "eval_split": self.kind.eval_splits[0],
            "base_settings": _jsonable({k: self.base.get(k) for k in self.compared_fields}),
            "trials": [{"trial_id": t.name, "hparams": t.hparams} for t in self.trials],
        }

    # === Definition: new, same, or changed ===
    def prepare(self, overwrite=False):
        """Records the sweep in sweep.json; refuses a changed sweep unless `overwrite`.

        Called by the process that holds the oracle, before KerasTuner starts.
        """
        new = self.definition()
        path = self.path(SWEEP_FILE)
        if io_utils.exists(path):
            changes = _differences(io_utils.read_json(path), new,
                                   _jsonable(_config_defaults(self.config_class)))
            if changes:
                if not overwrite:
                    raise ValueError(
                        f"{self.output_dir} holds another sweep ({path}): "
                        f"{'; '.join(changes[:6])}. Use a new --output_dir, or pass "
                        f"--overwrite to replace it (trials that changed are deleted)")
                logging.warning("--overwrite: replacing the sweep in %s (%s)", self.output_dir,
                                "; ".join(changes[:6]))
                self._discard_changed()
        elif io_utils.exists(self.path(TUNER_DIR)) or io_utils.exists(self.path(TRIALS_DIR)):
            if not overwrite:
                raise ValueError(f"{self.output_dir} holds sweep files but no {SWEEP_FILE}; "
                                 f"use a new --output_dir or pass --overwrite")
            self._discard_changed()
        io_utils.makedirs(self.output_dir)
        io_utils.write_json(path, new)

    def _discard_changed(self):
        """Deletes KerasTuner's state, the reports, and every trial that changed."""
        for name in (TUNER_DIR,) + REPORT_FILES:
            _remove(self.path(name))
        if not io_utils.exists(self.path(TRIALS_DIR)):
            return
        for entry in tf.io.gfile.listdir(self.path(TRIALS_DIR)):
            name = entry.rstrip("/")
            if not self._trial_dir_matches(name):
                logging.info("--overwrite: deleting trial %s", name)
                _remove(self.trial_dir(name))

    def _trial_dir_matches(self, name):
        trial = self.by_name.get(name)
        run_config = io_utils.join(self.trial_dir(name), trainer.RUN_CONFIG_FILE)
        if trial is None or not io_utils.exists(run_config):
            return False
        old = io_utils.read_json(run_config)["settings"]
        new = trial.config.to_json()
        # A field the run predates ran as its default: a newer version of this
        # package adding a setting keeps the trials it did not change.
        defaults = _config_defaults(self.config_class)
        return all(same_setting(k, _jsonable(old.get(k, defaults.get(k))), _jsonable(new.get(k)))
                   for k in self.compared_fields)

    def wait_for_definition(self, timeout_seconds=None, poll_seconds=1.0):
        """A worker waits for the chief's sweep.json, then checks it.

        Nothing may be written to the output directory before the chief has
        recorded the sweep: the chief would take an early worker's files for
        an unrecorded sweep and refuse to start.
        """
        path = self.path(SWEEP_FILE)
        if timeout_seconds is None:
            timeout_seconds = WORKER_WAIT_SECONDS
        deadline = time.monotonic() + timeout_seconds
        while not io_utils.exists(path) and time.monotonic() < deadline:
            time.sleep(poll_seconds)
        self.check_definition()

    def check_definition(self):
        """A worker's check that it runs the chief's sweep (same trials, same order)."""
        if self._definition_checked:
            return
        path = self.path(SWEEP_FILE)
        if not io_utils.exists(path):
            raise keras_tuner.errors.FatalValueError(
                f"{path} not found: the chief writes it before it serves trials; is the "
                f"chief running, and do all processes share --output_dir?")
        recorded = io_utils.read_json(path)["trials"]
        if recorded != _jsonable(self.definition()["trials"]):
            raise keras_tuner.errors.FatalValueError(
                f"this worker's sweep ({self.hparams.path}) differs from the chief's ({path}); "
                f"run the same hparams file and flags on every machine")
        self._definition_checked = True

    # === Trials ===
    def run_trial(self, name, tuner_id=None, keras_tuner_trial_id=None):
        """Runs one trial, or returns its record if it already finished."""
        trial = self.by_name.get(name)
        if trial is None:
            raise keras_tuner.errors.FatalValueError(
                f"the oracle handed out trial {name!r}, which {self.hparams.path} does not "
                f"define: this process runs another sweep than the oracle's")
        self.check_definition()
        trial_dir = self.trial_dir(name)
        result_path = io_utils.join(trial_dir, TRIAL_RESULT_FILE)
        if io_utils.exists(result_path):
            logging.info("Trial %s finished earlier: not run again", name)
            return io_utils.read_json(result_path)
        resumed = io_utils.exists(io_utils.join(trial_dir, trainer.CHECKPOINT_DIR))
        logging.info("Trial %d/%d %s: %s", trial.index + 1, len(self.trials), name,
                     "resuming from its checkpoint" if resumed else "starting")
        with trial_cache.kernel_cache_kept():   # Keep the shared steps' kernels.
            keras.backend.clear_session()         # (It collects garbage too.)
        callback = None
        if self.step_callback is not None:
            callback = lambda step: self.step_callback(name, step)  # noqa: E731
        started = time.time()
        try:
            with self.cache.active():
                metrics = trainer.run(trial.config, trial_dir, step_callback=callback,
                                      strategy=self.get_strategy())
        except (ValueError, FileNotFoundError) as err:
            # Bad input fails every trial alike: stop the sweep with the reason.
            # The trial stays assigned, so a fixed restart resumes it.
            raise keras_tuner.errors.FatalValueError(f"trial {name}: {err}") from err
        wall_seconds = time.time() - started
        params = io_utils.read_json(io_utils.join(trial_dir, trainer.PARAMS_FILE))
        record = {
            "trial_id": name, "hparams": trial.hparams, "metrics": _clean_metrics(metrics),
            "trained_params": int(params["trained_params"]),
            "trained_percent_of_base": params.get("trained_percent_of_base"),
            "wall_seconds": round(wall_seconds, 3), "resumed": resumed,
            "tuner_id": tuner_id, "keras_tuner_trial_id": keras_tuner_trial_id,
        }
        io_utils.write_json(result_path, record)
        logging.info("Trial %s: %s=%s (%.0f s)", name, self.metric,
                     record["metrics"].get(self.metric), wall_seconds)
        return record

    def get_strategy(self):
        """The trials' strategy, made once per process (a TPU is initialised once)."""
        if self.strategy is None:
            self.strategy = distribution.strategy_from_config(
                self.trials[0].config, also_for=[t.config for t in self.trials[1:]])
        return self.strategy

    def records(self):
        """{trial name: record} of every finished trial."""
        records = {}
        for trial in self.trials:
            path = io_utils.join(self.trial_dir(trial.name), TRIAL_RESULT_FILE)
            if io_utils.exists(path):
                records[trial.name] = io_utils.read_json(path)
        return records

    # === Reports ===
    def write_reports(self, statuses=None):
        """Rebuilds results.jsonl, summary.md and best.json from the trials' files.

        Args:
            statuses: {trial name: (KerasTuner status, message)} of the trials
                the oracle handed out.

        Returns:
            best.json's content, or None before any trial has a score.
        """
        records = self.records()
        ordered = [records[t.name] for t in self.trials if t.name in records]
        io_utils.write_text(self.path(RESULTS_FILE), "".join(
            json.dumps({k: r[k] for k in RESULT_KEYS}, sort_keys=True) + "\n" for r in ordered))
        best = selection.select_best(ordered, self.metric)
        summary = best and self._best_entry(best, len(ordered))
        if summary is not None:
            io_utils.write_json(self.path(BEST_FILE), summary)
        title = (f"Sweep {os.path.basename(self.hparams.path)} on {self.kind.task_name}: "
                 f"{self.metric} on {self.kind.eval_splits[0]}")
        io_utils.write_text(self.path(SUMMARY_FILE), selection.format_summary(
            title, [(t.name, t.hparams) for t in self.trials], records,
            _status_texts(statuses or {}, records), self.metric, best))
        return summary

    def _best_entry(self, best, num_finished):
        name = best["trial_id"]
        trial_dir = io_utils.join(TRIALS_DIR, name)
        files = self.kind.prediction_files()
        predictions = {f: io_utils.join(trial_dir, f) for f in files
                       if io_utils.exists(self.path(trial_dir, f))}
        return {
            "task": self.kind.task_name, "metric": self.metric,
            "eval_split": self.kind.eval_splits[0], "score": best["metrics"][self.metric],
            "selection": selection.TIE_BREAK,
            "trial_id": name, "hparams": best["hparams"], "metrics": best["metrics"],
            "trained_params": best["trained_params"],
            "trained_percent_of_base": best.get("trained_percent_of_base"),
            "trial_dir": trial_dir, "artifact": io_utils.join(trial_dir, trainer.ARTIFACT_DIR),
            "predictions": predictions,
            "finished_trials": num_finished, "total_trials": len(self.trials),
            "complete": num_finished == len(self.trials),
        }


def run_sweep(hparams_path, output_dir, defaults=None, explicit=None, overwrite=False,
              step_callback=None, strategy=None, runner=DEFAULT_RUNNER):
    """Runs (or resumes, or joins) a sweep; returns best.json's content.

    Args:
        hparams_path: the hparams file.
        output_dir: the sweep's directory.
        defaults, explicit: settings below / above the hparams file's config
            (see `resolve_trials`).
        overwrite: replace a different sweep recorded in `output_dir`.
        step_callback, strategy: see `Sweep`.
        runner: the script asking (an hparams file names the runner it is for).

    Returns:
        best.json's content on the process holding the oracle (None while no
        trial has a score, and on a worker).
    """
    hparams = load_hparams(hparams_path, runner)
    base, trials = resolve_trials(hparams, defaults, explicit)
    # The trials' strategy before anything touches TensorFlow's context (a
    # TPU or multi-worker strategy must come first). The chief runs no trial.
    if strategy is None and _role() != "chief":
        strategy = distribution.strategy_from_config(
            trials[0].config, also_for=[t.config for t in trials[1:]])
    if strategy is not None and distribution.is_multi_worker(strategy):
        raise ValueError(
            f"--hparams with --distribution_strategy=multi_worker_mirrored over "
            f"{distribution.worker_count(strategy)} workers: a sweep runs whole trials, one per "
            f"machine (KERASTUNER_* variables, see the README's 'Several machines'); to spread "
            f"one trial over machines, run it without --hparams")
    sweep = Sweep(hparams, base, trials, output_dir, step_callback=step_callback,
                  strategy=strategy)
    holds_oracle = _role() != "worker"
    if holds_oracle:
        sweep.prepare(overwrite)
    else:
        if overwrite:
            logging.warning("--overwrite is for the chief: ignored on worker %s", _tuner_id())
        sweep.wait_for_definition()

    def on_end_trial(oracle):
        try:
            sweep.write_reports(oracle.trial_statuses())
        except Exception:  # pylint: disable=broad-except
            # A report is rebuilt after the next trial: never fail the oracle.
            logging.exception("Could not write the sweep's reports")

    oracle = SweepOracle([t.name for t in trials], sweep.metric, on_end_trial=on_end_trial)
    # The chief runs no trial: it needs no accelerator.
    trial_strategy = sweep.get_strategy() if _role() != "chief" else None
    tuner = SweepTuner(oracle, sweep.run_trial, sweep.metric, directory=output_dir,
                       project_name=TUNER_DIR, distribution_strategy=trial_strategy)
    logging.info("Sweep %s: %d trials of %s into %s (%s)", hparams.path, len(trials),
                 sweep.kind.task_name, output_dir, _role())
    if holds_oracle:
        sweep.write_reports(oracle.trial_statuses())
    tuner.search(verbose=0)
    if not holds_oracle:
        return None
    best = sweep.write_reports(oracle.trial_statuses())
    if best is not None:
        logging.info("Best of %d/%d trials: %s, %s=%.4f", best["finished_trials"],
                     best["total_trials"], best["trial_id"], best["metric"], best["score"])
    return best


def run_sweep_from_flags(values, runner=DEFAULT_RUNNER):
    """`run_classifier.py --hparams=...` (or run_squad.py): the sweep, settings from the flags."""
    cls = config_class(runner)
    fields = [f.name for f in dataclasses.fields(cls) if f.name in values]
    defaults = {name: values[name].value for name in fields}
    explicit = {name: values[name].value for name in fields if values[name].present}
    return run_sweep(values.hparams, values.output_dir, defaults=defaults, explicit=explicit,
                     overwrite=values.overwrite, runner=runner)


# === Helpers ===
def _role():
    """"local", "chief" or "worker", from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    return "chief" if "chief" in _tuner_id() else "worker"


def _tuner_id():
    return os.environ.get("KERASTUNER_TUNER_ID", "tuner0")


def _differences(old, new, defaults=None):
    """Readable differences between two sweep definitions.

    A setting missing from the old definition (recorded by a version of this
    package that did not have it) counts as its default from `defaults`.
    """
    defaults = defaults or {}
    changes = []
    old_trials = [t["trial_id"] for t in old.get("trials", [])]
    new_trials = [t["trial_id"] for t in new["trials"]]
    added = [t for t in new_trials if t not in old_trials]
    removed = [t for t in old_trials if t not in new_trials]
    if added:
        changes.append(f"trials added: {', '.join(added[:4])}"
                       + (f" and {len(added) - 4} more" if len(added) > 4 else ""))
    if removed:
        changes.append(f"trials removed: {', '.join(removed[:4])}"
                       + (f" and {len(removed) - 4} more" if len(removed) > 4 else ""))
    if not added and not removed and old_trials != new_trials:
        changes.append("the trials' order changed (it breaks ties)")
    new_settings = _jsonable(new["base_settings"])
    old_settings = {k: defaults.get(k) for k in new_settings}
    old_settings.update(old.get("base_settings", {}))
    for key in sorted(set(old_settings) | set(new_settings)):
        if not same_setting(key, old_settings.get(key), new_settings.get(key)):
            changes.append(f"{key}: {old_settings.get(key)!r} -> {new_settings.get(key)!r}")
    if old.get("task") != new["task"]:
        changes.append(f"task: {old.get('task')} -> {new['task']}")
    return changes


def _status_texts(statuses, records):
    texts = {}
    for name, (status, message) in statuses.items():
        if name in records:
            continue
        if status == "RUNNING":
            texts[name] = "running"
        elif status in ("FAILED", "INVALID"):
            last = [line for line in (message or "").splitlines() if line.strip()]
            texts[name] = "failed" + (f": {last[-1].strip()[:120]}" if last else "")
        else:
            texts[name] = status.lower()
    return texts


def _clean_metrics(metrics):
    """JSON-safe metrics: Python numbers, NaN and infinity as None."""
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, str)) or value is None:
            clean[key] = value
        elif key == "global_step" or key.startswith("num_"):
            clean[key] = int(value)
        else:
            clean[key] = float(value) if math.isfinite(float(value)) else None
    return clean


def _jsonable(value):
    return json.loads(json.dumps(value))


def _remove(path):
    if not io_utils.exists(path):
        return
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    else:
        tf.io.gfile.remove(path)
