"""Parameter/performance trade-off (paper, section 3.4, figures 3 and 4).

  python -m bert_adapters.analysis tradeoff --runs_dir runs/tradeoff_base/CoLA \
    runs/tradeoff_base/MNLI --output_dir runs/tradeoff [--methods=adapters:64,full]

From sweeps over adapter sizes, top-k fine-tuning, LayerNorm-only and full
fine-tuning (`hparams/tradeoff_base.py`, `hparams/minilm_glue_mrpc.py`). A
trial's method comes from its settings: `tuning` (`adapters`, `top_k`,
`layer_norm`, `full`) with `adapter_size` or `num_tuned_layers`. Each point
is one method variant of one task at its best setting: the learning rate
(epochs, ...) whose mean dev metric over seeds is highest, as the paper
selects on validation (`--select=first_seed`: the rate whose lowest seed
scored highest, for sweeps that add seeds only at the chosen rate); its trained parameters come from the trial results
(encoder and head). When the task has a full fine-tuning run, each point's
difference from it is computed too, and plotted (figure 3's normalisation).

Writes to `--output_dir`:
  tradeoff.csv        every point: task, method, variant, trained_params,
                      mean (and sem, n_seeds) in eval_results.json units,
                      delta_vs_full (empty without a full run), trials
  tradeoff_bands.csv  with several tasks: per method variant present in every
                      task, the 20th, 50th and 80th percentiles across tasks
                      (of delta_vs_full when every task has a full run, else
                      of the metric) at the median parameter count
  tradeoff.md         a table: one row per method variant, one column per task
                      (mean +- std over seeds, in points), and their average
  tradeoff.png        the points (one task, error bars +-1 sem over seeds, as the paper) or
                      the median line and 20-80 band (several tasks), against
                      trained parameters on a log axis
"""

import numpy as np

from bert_adapters import io_utils
from bert_adapters.analysis import AnalysisError, figures, sweep_results

PNG_FILE = "tradeoff.png"
CSV_FILE = "tradeoff.csv"
BANDS_FILE = "tradeoff_bands.csv"
METHODS = ("adapters", "top_k", "layer_norm", "full")
METHOD_LABELS = {"adapters": "adapters (size m)", "top_k": "fine-tune top k layers",
                 "layer_norm": "LayerNorm only", "full": "full fine-tuning"}
VARIANT_NAMES = {"adapters": "m", "top_k": "k"}
CSV_COLUMNS = ("task", "base", "metric", "method", "variant", "trained_params", "n_seeds",
               "mean", "std", "sem", "delta_vs_full", "trials")
TABLE_FILE = "tradeoff.md"
BAND_COLUMNS = ("method", "variant", "n_tasks", "trained_params", "value", "p20", "p50", "p80")
PERCENTILES = (20, 50, 80)


def method_of(trial):
    """(method, variant): `("adapters", 64)`, `("top_k", 3)`, `("layer_norm", None)`, ..."""
    settings = trial.settings
    tuning = settings.get("tuning")
    field = {"adapters": "adapter_size", "top_k": "num_tuned_layers"}.get(tuning)
    if tuning not in METHODS:
        raise AnalysisError(f"{trial.where}: trial {trial.trial_id} has tuning={tuning!r}; "
                            f"expected one of {METHODS}")
    if field is None:
        return tuning, None
    value = settings.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AnalysisError(f"{trial.where}: trial {trial.trial_id} (tuning={tuning}) has no "
                            f"positive integer {field} (found {value!r})")
    return tuning, value


def tradeoff_points(trials, select="mean"):
    """One row per (task, method, variant): its best setting's mean over seeds.

    `select`: how the best setting is picked (`sweep_results.best_setting`).
    """
    groups = {}
    for trial in trials:
        groups.setdefault((trial.task,) + method_of(trial), []).append(trial)
    tasks = list(dict.fromkeys(t.task for t in trials))
    rows = []
    for task in tasks:
        task_rows = []
        keys = sorted((k for k in groups if k[0] == task),
                      key=lambda k: (METHODS.index(k[1]), k[2] or 0))
        for key in keys:
            best = sweep_results.best_setting(groups[key], select)
            if best is None:
                continue
            summary, group = best
            task_rows.append({
                "task": task, "base": group[0].base, "metric": group[0].metric,
                "kind": group[0].kind, "method": key[1], "variant": key[2],
                "trained_params": group[0].trained_params, "n_seeds": summary["n_seeds"],
                "mean": summary["mean"], "std": summary["std"], "sem": summary["sem"],
                "trials": summary["trials"]})
        full = [r for r in task_rows if r["method"] == "full"]
        for row in task_rows:
            row["delta_vs_full"] = row["mean"] - full[0]["mean"] if full else None
        rows.extend(task_rows)
    if not rows:
        raise AnalysisError("no trial has a finite dev metric: nothing to plot")
    return rows


def uses_delta(rows):
    """Differences from full fine-tuning are plotted when every task has one."""
    return all(r["delta_vs_full"] is not None for r in rows)


def tradeoff_bands(rows):
    """Percentiles across tasks of each method variant that every task has."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    field = "delta_vs_full" if uses_delta(rows) else "mean"
    variants = list(dict.fromkeys((r["method"], r["variant"]) for r in rows))
    bands = []
    for method, variant in variants:
        points = [r for r in rows if (r["method"], r["variant"]) == (method, variant)]
        if len(points) < len(tasks):
            continue  # A band over fewer tasks than the others would mislead.
        values = np.array([r[field] for r in points], dtype=float)
        p20, p50, p80 = (float(v) for v in np.percentile(values, PERCENTILES))
        bands.append({"method": method, "variant": variant, "n_tasks": len(points),
                      "trained_params": float(np.median([r["trained_params"] for r in points])),
                      "value": field, "p20": p20, "p50": p50, "p80": p80})
    return bands


def _label_points(ax, method, xs, ys, variants):
    name = VARIANT_NAMES.get(method)
    if not name:
        return
    for x, y, v in zip(xs, ys, variants):
        ax.annotate(f"{name}={v}", (x, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7, color=figures.METHOD_COLORS[method])


def plot_tradeoff(rows, bands, path):
    delta = uses_delta(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    kinds = {r["kind"] for r in rows}
    scale = figures.metric_scale(kinds.pop()) if len(kinds) == 1 else 100.0
    figure = figures.new_figure(figures.TRADEOFF_SIZE)
    ax = figure.add_subplot()
    if len(tasks) == 1:
        for method in METHODS:
            points = sorted((r for r in rows if r["method"] == method),
                            key=lambda r: r["trained_params"])
            if not points:
                continue
            xs = [r["trained_params"] for r in points]
            ys = [(r["delta_vs_full"] if delta else r["mean"]) * scale for r in points]
            yerr = [r["sem"] * scale for r in points]
            marker = "*" if method == "full" else "o"
            ax.errorbar(xs, ys, yerr=yerr, marker=marker, markersize=11 if method == "full" else 5,
                        capsize=3, color=figures.METHOD_COLORS[method],
                        label=METHOD_LABELS[method])
            if method == "full":
                ax.axhline(ys[0], color="black", linestyle="--", linewidth=0.8)
            _label_points(ax, method, xs, ys, [r["variant"] for r in points])
    else:
        for method in METHODS:
            points = sorted((b for b in bands if b["method"] == method),
                            key=lambda b: b["trained_params"])
            if not points:
                continue
            color = figures.METHOD_COLORS[method]
            xs = [b["trained_params"] for b in points]
            mid = np.array([b["p50"] for b in points]) * scale
            low = np.array([b["p20"] for b in points]) * scale
            high = np.array([b["p80"] for b in points]) * scale
            marker = "*" if method == "full" else "o"
            ax.errorbar(xs, mid, yerr=[mid - low, high - mid], marker=marker, capsize=3,
                        color=color, markersize=11 if method == "full" else 5,
                        label=f"{METHOD_LABELS[method]}: median")
            if len(points) > 1:
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0,
                                label=f"{METHOD_LABELS[method]}: 20th-80th percentile")
            if method == "full":
                ax.axhline(mid[0], color="black", linestyle="--", linewidth=0.8)
            _label_points(ax, method, xs, mid, [b["variant"] for b in points])
    ax.set_xscale("log")
    ax.set_xlabel("trained parameters per task (count, log scale)")
    metric = metrics[0] if len(metrics) == 1 else "metric"
    if delta:
        units = sorted({figures.points_unit(m) for m in metrics})
        ax.set_ylabel(f"dev {metric} minus full fine-tuning ({', '.join(units)})")
    else:
        units = sorted({figures.metric_unit(m) for m in metrics})
        ax.set_ylabel(f"dev {metric} ({', '.join(units)})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    title = (f"Parameter/performance trade-off: {figures.join_names(tasks)}, "
             f"{figures.join_names(r['base'] for r in rows)}")
    if len(tasks) > 1:
        title += f"\nmedian and 20th-80th percentiles over {len(tasks)} tasks"
    figure.suptitle(title, fontsize=11)
    figures.save_png(figure, path)


def markdown_table(rows):
    """Method variants down, tasks across: mean +- std over seeds in points, and the average.

    The average over tasks is given only for variants that every task has.
    """
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys((r["method"], r["variant"]) for r in rows))
    by_key = {(r["task"], r["method"], r["variant"]): r for r in rows}
    header = ["method", "trained params"] + [
        f"{t} ({next(r['metric'] for r in rows if r['task'] == t)})" for t in tasks] + ["average"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, variant in variants:
        cells, means = [], []
        for task in tasks:
            row = by_key.get((task, method, variant))
            if row is None:
                cells.append("")
                continue
            scale = figures.metric_scale(row["kind"])
            means.append(row["mean"] * scale)
            cells.append(f"{row['mean'] * scale:.1f} ± {row['std'] * scale:.1f} "
                         f"(n={row['n_seeds']})")
        params = sorted({by_key[(t, method, variant)]["trained_params"] for t in tasks
                         if (t, method, variant) in by_key})
        name = METHOD_LABELS[method].split(" (")[0]
        if variant is not None:
            name += f", {VARIANT_NAMES[method]}={variant}"
        average = f"{np.mean(means):.1f}" if len(means) == len(tasks) else ""
        lines.append("| " + " | ".join([name, "/".join(f"{p:,}" for p in params)] + cells
                                       + [average]) + " |")
    return "\n".join(lines) + "\n"


def parse_methods(text):
    """`--methods`: "adapters:64,full" -> {("adapters", 64), ("full", None)}; a bare
    method with variants ("adapters", "top_k") -> ("adapters", "*"), all of them."""
    wanted = set()
    for item in (part.strip() for part in text.split(",")):
        method, _, variant = item.partition(":")
        if method not in METHODS:
            raise AnalysisError(f"--methods: {item!r}: expected one of {', '.join(METHODS)}, "
                                f"with :<size> or :<k> for adapters and top_k")
        if not variant:
            wanted.add((method, "*" if method in VARIANT_NAMES else None))
        elif method in VARIANT_NAMES and variant.isdigit() and int(variant) > 0:
            wanted.add((method, int(variant)))
        else:
            raise AnalysisError(f"--methods: {item!r}: {method} takes "
                                + (f"a positive integer {VARIANT_NAMES[method]}"
                                   if method in VARIANT_NAMES else "no variant"))
    return wanted


def keep_methods(trials, methods):
    """The trials of the method variants `--methods` names (`parse_methods`)."""
    wanted = parse_methods(methods)
    kept = [t for t, (method, variant) in ((t, method_of(t)) for t in trials)
            if (method, variant) in wanted or (method, "*") in wanted]
    if not kept:
        raise AnalysisError(f"--methods={methods}: no trial of these methods in the sweeps")
    return kept


def write_tradeoff(sweep_dirs, output_dir, metric=None, select="mean", methods=None):
    """The `tradeoff` command: tradeoff.png, .csv, .md (+ bands); returns (rows, bands).

    `methods`: `--methods`, the method variants to keep (default: all)."""
    trials = sweep_results.read_sweeps(sweep_dirs, metric)
    if methods:
        trials = keep_methods(trials, methods)
    rows = tradeoff_points(trials, select)
    bands = tradeoff_bands(rows) if len({r["task"] for r in rows}) > 1 else []
    io_utils.makedirs(output_dir)
    plot_tradeoff(rows, bands, io_utils.join(output_dir, PNG_FILE))
    if bands:
        figures.write_csv(io_utils.join(output_dir, BANDS_FILE), BAND_COLUMNS, bands)
    figures.write_csv(io_utils.join(output_dir, CSV_FILE), CSV_COLUMNS, rows)
    io_utils.write_text(io_utils.join(output_dir, TABLE_FILE), markdown_table(rows))
    return rows, bands
