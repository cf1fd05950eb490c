"""Dev metric and training step time against the lowest adapted layer (`--adapter_layers`).

  python -m bert_adapters.analysis adapter_layers --runs_dir runs/adapter_layers_mrpc \
    --output_dir runs/adapter_layers_mrpc/figure

From sweeps over `adapter_layers` (`hparams/minilm_adapter_layers.py`): for
each span i..j of adapted layers, the dev metric (mean and sample standard
deviation over seeds) and what a training step cost (each trial's
`train_stats.json`: the fastest seed's step time and examples/s, the smallest
peak RSS), against the lowest adapted layer i. Fastest and smallest because
other processes on the machine (a sweep's other workers, a paused run) only
ever add time, and a sweep worker's later trials also carry the trial cache
of its earlier ones; for figures without either, use
`benchmarks/train_throughput.py --adapter_layers`. A trial without
`adapter_layers` has adapters in every layer (i = 1). When a span has trials
at several other settings (learning rates), the setting with the best mean
is shown, as the paper selects on validation.

Writes to `--output_dir`:
  adapter_layers.csv  one row per (task, span): metric mean, std, min, max in
                      eval_results.json units; step_seconds,
                      examples_per_second, peak_rss_gb (empty where no trial
                      recorded them); the trials
  adapter_layers.png  the metric (error bars: 1 std; dots: each seed) and the
                      step time, against the lowest adapted layer
"""

import math

from bert_adapters import io_utils
from bert_adapters.analysis import AnalysisError, figures, sweep_results
from bert_adapters.model.layer_span import parse_layer_span

PNG_FILE = "adapter_layers.png"
CSV_FILE = "adapter_layers.csv"
STATS_FILE = "train_stats.json"   # training/train_stats.py: what each trial measured
CSV_COLUMNS = ("task", "base", "metric", "adapter_layers", "lowest_layer", "highest_layer",
               "n_seeds", "mean", "std", "min", "max", "step_seconds", "examples_per_second",
               "peak_rss_gb", "trials")


def _num_layers(sweep_dir, trial):
    path = io_utils.join(sweep_dir, sweep_results.TRIALS_DIR, trial.trial_id,
                         sweep_results.RUN_CONFIG_FILE)
    record = sweep_results.read_json(path, "a trial without adapter_layers needs its run's "
                                           "run_config.json to know the encoder's layers")
    layers = (record.get("encoder_config") or {}).get("num_layers")
    if not isinstance(layers, int):
        raise AnalysisError(f"{path}: encoder_config.num_layers missing")
    return layers


def _stats(sweep_dir, trial):
    """The trial's train_stats.json, or None (a run from before they were recorded)."""
    path = io_utils.join(sweep_dir, sweep_results.TRIALS_DIR, trial.trial_id, STATS_FILE)
    if not io_utils.exists(path):
        return None
    stats = sweep_results.read_json(path, "")
    if not isinstance(stats, dict):
        raise AnalysisError(f"{path}: expected a JSON object")
    return stats


def _finite(values):
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def span_points(sweep_dirs, metric=None):
    """One row per (task, span of adapted layers), spans by lowest layer then highest."""
    if not sweep_dirs:
        raise AnalysisError("--runs_dir: give at least one sweep directory")
    by_span = {}   # (task, (first, last)) -> [(trial, stats)]
    for sweep_dir in sweep_dirs:
        for trial in sweep_results.read_sweep(sweep_dir, metric):
            if trial.settings.get("tuning", "adapters") != "adapters":
                raise AnalysisError(f"{trial.where}: trial {trial.trial_id} has tuning="
                                    f"{trial.settings.get('tuning')!r}; this figure compares "
                                    f"adapter runs only")
            value = trial.settings.get("adapter_layers")
            try:
                span = parse_layer_span(value)
            except ValueError as err:
                raise AnalysisError(f"{trial.where}: trial {trial.trial_id}: {err}") from None
            span = span or (1, _num_layers(sweep_dir, trial))
            by_span.setdefault((trial.task, span), []).append((trial, _stats(sweep_dir, trial)))
    rows = []
    for (task, span), entries in sorted(by_span.items(), key=lambda kv: kv[0][1]):
        stats_of = {id(trial): stats for trial, stats in entries}
        best = sweep_results.best_setting([trial for trial, _ in entries])
        if best is None:
            continue
        summary, group = best
        stats = [stats_of[id(t)] for t in group if stats_of[id(t)] is not None]
        rss = min(_finite(s.get("peak_rss_bytes") for s in stats), default=None)
        rows.append({
            "task": task, "base": group[0].base, "metric": group[0].metric, "kind": group[0].kind,
            "adapter_layers": f"{span[0]}-{span[1]}", "lowest_layer": span[0],
            "highest_layer": span[1], **summary,
            "scores": [t.score for t in group],
            "step_seconds": min(_finite(s.get("step_seconds") for s in stats), default=None),
            "examples_per_second": max(_finite(s.get("examples_per_second") for s in stats),
                                       default=None),
            "peak_rss_gb": rss / 2 ** 30 if rss else None,
        })
    if not rows:
        raise AnalysisError("no trial has a finite dev metric: nothing to plot")
    return rows


def plot_adapter_layers(rows, path):
    figure = figures.new_figure(figures.ADAPTER_LAYERS_SIZE)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for task, points, scale, _, color in figures.task_errorbars(
            top, rows, "lowest_layer", "mean ± std over seeds"):
        for r in points:
            top.scatter([r["lowest_layer"]] * len(r["scores"]),
                        [s * scale for s in r["scores"]], s=12, alpha=0.5, color=color)
            top.annotate(r["adapter_layers"], (r["lowest_layer"], r["mean"] * scale),
                         textcoords="offset points", xytext=(6, 6), fontsize=8)
        timed = [r for r in points if r["step_seconds"] is not None]
        if timed:
            bottom.plot([r["lowest_layer"] for r in timed],
                        [r["step_seconds"] * 1e3 for r in timed], marker="s", color=color,
                        label=f"{task}: training step, fastest seed")
    top.set_ylabel(figures.metric_axis_label(rows))
    top.legend(fontsize=8)
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("step time (ms)")
    bottom.set_xlabel("lowest adapted layer i (adapters in layers i..j; 1 = lowest layer)")
    bottom.grid(True, alpha=0.3)
    if any(r["step_seconds"] is not None for r in rows):
        bottom.legend(fontsize=8)
    else:
        bottom.text(0.5, 0.5, "no trial recorded train_stats.json", ha="center",
                    va="center", transform=bottom.transAxes)
    bottom.set_xticks(sorted({r["lowest_layer"] for r in rows}))
    bases = figures.join_names(r["base"] for r in rows)
    figure.suptitle(f"Adapters in layers i..j: {figures.join_names(tasks)}, {bases}",
                    fontsize=11)
    figures.save_png(figure, path)


def write_adapter_layers(sweep_dirs, output_dir, metric=None):
    """The `adapter_layers` command: the PNG and CSV in `output_dir`; returns the rows."""
    rows = span_points(sweep_dirs, metric)
    io_utils.makedirs(output_dir)
    plot_adapter_layers(rows, io_utils.join(output_dir, PNG_FILE))
    figures.write_csv(io_utils.join(output_dir, CSV_FILE), CSV_COLUMNS, rows)
    return rows
