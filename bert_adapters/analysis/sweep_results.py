"""The finished trials of sweep directories, each with its full settings.

A sweep directory (`bert_adapters/sweep/runner.py`) holds `sweep.json` (the
task, the metric that selects, `base_settings` shared by every trial) and
`results.jsonl` (one line per finished trial: `trial_id`, `hparams` = the
swept values, `metrics`, `trained_params`, `wall_seconds`). A trial's
settings are `base_settings` with its `hparams` on top: that is how the
analysis tells methods apart (`tuning`, `adapter_size`, `num_tuned_layers`,
`adapter_init_scale`), and `seed` tells repeats apart.
"""

import dataclasses
import json
import math
import statistics

from bert_adapters import io_utils
from bert_adapters.model import heads
from bert_adapters.analysis import AnalysisError

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.jsonl"
TRIALS_DIR = "trials"
RUN_CONFIG_FILE = "run_config.json"
SEED_FIELD = "seed"
# What every results.jsonl line must have.
_RECORD_FIELDS = (("trial_id", str, "a string (the trial's name)"),
                  ("hparams", dict, "an object (the trial's swept settings)"),
                  ("metrics", dict, "an object (the trial's dev metrics)"),
                  ("trained_params", int, "an integer (the trained parameter count)"))


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """One finished trial.

    Args:
        where: `<sweep>/results.jsonl line <n>`, for messages.
        task: the sweep's task name.
        kind: its task kind (`heads.KINDS`).
        trial_id: the trial's name.
        metric: the metrics key `score` was read from.
        settings: the sweep's base settings with the trial's swept values.
        score: the chosen metric, a float (NaN if not finite).
        trained_params: trained parameters (encoder and head).
        wall_seconds: the trial's wall time, or None.
    """

    where: str
    task: str
    kind: str
    trial_id: str
    metric: str
    settings: dict
    score: float
    trained_params: int
    wall_seconds: object

    def setting_key(self):
        """Every setting but the seed, as a hashable key: the trial's repeats share it."""
        return json.dumps({k: v for k, v in self.settings.items() if k != SEED_FIELD},
                          sort_keys=True, default=str)

    @property
    def base(self):
        """The base encoder's name for titles."""
        base = self.settings.get("encoder") or self.settings.get("init_checkpoint")
        return str(base).rstrip("/").split("/")[-1] if base else "unknown base"


def read_json(path, what):
    """The JSON in `path`; AnalysisError naming the file (and `what` it should be)."""
    if not io_utils.exists(path):
        raise AnalysisError(f"{path} not found: {what}")
    try:
        return io_utils.read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnalysisError(f"{path} is not valid JSON ({err})") from None


def _kind_of(sweep_dir, trial_ids):
    """The task kind recorded by the first trial directory that has a run_config.json."""
    for trial_id in trial_ids:
        path = io_utils.join(sweep_dir, TRIALS_DIR, trial_id, RUN_CONFIG_FILE)
        if io_utils.exists(path):
            return read_json(path, "").get("task_kind", heads.CLASSIFICATION)
    return heads.CLASSIFICATION


def _score(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else math.nan


def read_sweep(sweep_dir, metric=None):
    """[TrialResult] of one sweep directory, in results.jsonl order.

    Args:
        sweep_dir: the directory `run_classifier.py --hparams` wrote.
        metric: the metrics key to read; default the sweep's own (sweep.json).
    """
    sweep_path = io_utils.join(sweep_dir, SWEEP_FILE)
    sweep = read_json(sweep_path, "--runs_dir must be a sweep's output directory "
                                   "(run_classifier.py --hparams=... --output_dir=...)")
    if not isinstance(sweep, dict):
        raise AnalysisError(f"{sweep_path}: expected a JSON object")
    for field in ("task", "metric"):
        if not isinstance(sweep.get(field), str):
            raise AnalysisError(f"{sweep_path}: field `{field}` missing or not a string")
    base = sweep.get("base_settings", {})
    if not isinstance(base, dict):
        raise AnalysisError(f"{sweep_path}: `base_settings` must be an object")
    metric = metric or sweep["metric"]
    results_path = io_utils.join(sweep_dir, RESULTS_FILE)
    if not io_utils.exists(results_path):
        raise AnalysisError(f"{results_path} not found: the sweep in {sweep_dir} has no "
                            f"finished trial yet")
    lines = io_utils.read_text(results_path).splitlines()
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{results_path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise AnalysisError(f"{where}: not valid JSON ({err})") from None
        if not isinstance(record, dict):
            raise AnalysisError(f"{where}: expected a JSON object")
        for field, kind, expected in _RECORD_FIELDS:
            value = record.get(field)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise AnalysisError(f"{where}: field `{field}` missing or not {expected}")
        score = _score(record["metrics"].get(metric))
        if score is None and metric in record["metrics"] and record["metrics"][metric] is None:
            score = math.nan  # Not finite (a run that diverged): results.jsonl writes null.
        if score is None:
            raise AnalysisError(f"{where}: metrics have no number `{metric}` (they have "
                                f"{sorted(record['metrics'])}); pick one with --metric")
        parsed.append((where, record, score))
    if not parsed:
        raise AnalysisError(f"{results_path} is empty: the sweep in {sweep_dir} has no "
                            f"finished trial yet")
    kind = _kind_of(sweep_dir, [r["trial_id"] for _, r, _ in parsed])
    return [TrialResult(where, sweep["task"], kind, record["trial_id"], metric,
                        {**base, **record["hparams"]}, score, record["trained_params"],
                        record.get("wall_seconds"))
            for where, record, score in parsed]


def read_sweeps(sweep_dirs, metric=None):
    """Every finished trial of several sweep directories, in the order given."""
    if not sweep_dirs:
        raise AnalysisError("--runs_dir: give at least one sweep directory")
    trials = []
    for sweep_dir in sweep_dirs:
        trials.extend(read_sweep(sweep_dir, metric))
    return trials


def seed_groups(trials):
    """{setting key: [TrialResult]}: the repeats (seeds) of each setting, in order."""
    groups = {}
    for trial in trials:
        groups.setdefault(trial.setting_key(), []).append(trial)
    return groups


def summarize(trials):
    """Mean, spread and count of the finite scores of one setting's repeats.

    Returns None when no repeat has a finite score. `std` is the sample
    standard deviation (0 for one seed), `sem` = std / sqrt(n).
    """
    scores = [t.score for t in trials if math.isfinite(t.score)]
    if not scores:
        return None
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return {"n_seeds": len(scores), "mean": statistics.fmean(scores), "std": std,
            "sem": std / math.sqrt(len(scores)), "min": min(scores), "max": max(scores),
            "trials": ";".join(t.trial_id for t in trials)}


SELECTIONS = ("mean", "first_seed")


def best_setting(trials, select="mean"):
    """The summary of the best setting among `trials` (first on a tie), with its repeats.

    `select` says how the paper's procedure picks a point's learning rate
    (epochs, ...) on validation:
      - "mean": the setting whose mean over seeds is highest;
      - "first_seed": the setting whose run with the lowest seed scored
        highest, reported over all its seeds (a rate grid run at one seed,
        then more seeds at the chosen rate: `hparams/minilm_glue.py`).
    Returns (summary, repeats) or None when no setting has a finite score.
    """
    if select not in SELECTIONS:
        raise AnalysisError(f"--select={select!r}: expected one of {', '.join(SELECTIONS)}")
    best = None
    for group in seed_groups(trials).values():
        summary = summarize(group)
        if summary is None:
            continue
        rank = summary["mean"] if select == "mean" else _first_seed_score(group)
        if best is None or rank > best[0]:
            best = (rank, summary, group)
    return None if best is None else best[1:]


def _first_seed_score(group):
    first = min(group, key=lambda t: t.settings.get(SEED_FIELD, 0))
    return first.score if math.isfinite(first.score) else -math.inf
