"""Robustness to the adapters' init scale (paper, section 3.6, figure 6 right).

  python -m bert_adapters.analysis init_scale --runs_dir runs/init_scale_base/MNLI \
    runs/init_scale_base/CoLA --output runs/init_scale.png

From sweeps over `adapter_init_scale` (`hparams/init_scale_base.py`): the dev
metric against the std of the adapters' truncated-normal initialiser, on a
log axis, one line per task: the mean over seeds, error bars of one sample
standard deviation and a band from the lowest to the highest seed. When a
sweep varies more than the scale and the seed (a learning rate), each point
is the setting with the best mean. Writes the PNG and, beside it, the CSV of
the points (`OUT.csv`), values in the units of eval_results.json.
"""

from matplotlib.patches import Patch

from bert_adapters import io_utils
from bert_adapters.analysis import AnalysisError, figures, sweep_results

CSV_COLUMNS = ("task", "base", "metric", "adapter_init_scale", "n_seeds", "mean", "std", "min",
               "max", "trials")
PAPER_SCALE = 1e-2  # The paper's main experiments (section 3.6).


def init_scale_points(trials):
    """One row per (task, init scale) in first-seen task order, scales ascending."""
    by_task = {}
    for trial in trials:
        if trial.settings.get("tuning", "adapters") != "adapters":
            raise AnalysisError(f"{trial.where}: trial {trial.trial_id} has tuning="
                                f"{trial.settings.get('tuning')!r}; the init-scale study "
                                f"compares adapter runs only")
        scale = trial.settings.get("adapter_init_scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise AnalysisError(f"{trial.where}: trial {trial.trial_id} has no positive "
                                f"adapter_init_scale (found {scale!r})")
        by_task.setdefault(trial.task, {}).setdefault(float(scale), []).append(trial)
    rows = []
    for task, by_scale in by_task.items():
        for scale in sorted(by_scale):
            best = sweep_results.best_setting(by_scale[scale])
            if best is None:
                continue
            summary, group = best
            rows.append({"task": task, "base": group[0].base, "metric": group[0].metric,
                         "adapter_init_scale": scale, **summary,
                         "kind": group[0].kind,
                         "adapter_size": group[0].settings.get("adapter_size")})
    if not rows:
        raise AnalysisError("no trial has a finite dev metric: nothing to plot")
    return rows


def plot_init_scale(rows, path):
    figure = figures.new_figure(figures.INIT_SCALE_SIZE)
    ax = figure.add_subplot()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for _, points, scale, x, color in figures.task_errorbars(
            ax, rows, "adapter_init_scale", "mean over seeds"):
        ax.fill_between(x, [r["min"] * scale for r in points],
                        [r["max"] * scale for r in points], alpha=0.2, color=color,
                        linewidth=0)
    ax.axvline(PAPER_SCALE, color="grey", linestyle=":", label="paper's std (1e-2)")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(color="grey", alpha=0.3, label="lowest to highest seed; bars: 1 std"))
    ax.legend(handles=handles, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("std of the adapters' truncated-normal init (log scale)")
    ax.set_ylabel(figures.metric_axis_label(rows))
    ax.grid(True, which="major", alpha=0.3)
    sizes = sorted({r["adapter_size"] for r in rows if r["adapter_size"]})
    bases = figures.join_names(r["base"] for r in rows)
    figure.suptitle(f"Init-scale robustness: {figures.join_names(tasks)}, {bases}"
                    + (f" (adapters m={', '.join(map(str, sizes))})" if sizes else ""),
                    fontsize=11)
    figures.save_png(figure, path)


def write_init_scale(sweep_dirs, output, metric=None):
    """The `init_scale` command: `output` (.png) and the CSV beside it; returns the rows."""
    if not output.lower().endswith(".png"):
        raise AnalysisError(f"--output {output}: expected a .png file name (the CSV is "
                            f"written beside it)")
    rows = init_scale_points(sweep_results.read_sweeps(sweep_dirs, metric))
    csv_path = output[:-len(".png")] + ".csv"
    parent = output.rstrip("/").rsplit("/", 1)[0] if "/" in output else ""
    if parent:
        io_utils.makedirs(parent)
    plot_init_scale(rows, output)
    figures.write_csv(csv_path, CSV_COLUMNS, rows)
    return rows
