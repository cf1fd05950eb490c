"""Choosing the best trial, and the sweep's readable reports.

The paper picks every reported model as the best run of a sweep on the
validation set. Here the rule is, in order:
  1. the higher primary metric on the task's primary eval split (every GLUE
     primary metric, and a custom task's accuracy, is higher-is-better); a
     trial without a finite score never wins;
  2. on a tie, the lower `eval_loss` on that same split;
  3. then the earlier trial in the sweep's order (`get_sweep()`).
The same rule, with the run directory's path as the last key, picks the best
run per task for the GLUE submission bundle.
"""

import math
import statistics

TIE_BREAK = ("highest primary metric on the primary eval split; ties: lowest eval_loss, "
             "then the earliest trial in the sweep's order")


def finite(value):
    """`value` as a float if it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def rank_key(metrics, metric):
    """A sort key, larger is better: (has a score, score, -eval_loss)."""
    score = finite(metrics.get(metric))
    loss = finite(metrics.get("eval_loss"))
    return (score is not None, score if score is not None else -math.inf,
            -loss if loss is not None else -math.inf)


def select_best(records, metric):
    """The best record of `records` (dicts with `metrics`), or None.

    `records` are in the sweep's order; the earliest wins a full tie. A record
    without a finite `metric` is never chosen.
    """
    best, best_key = None, None
    for record in records:
        key = rank_key(record["metrics"], metric)
        if key[0] and (best_key is None or key > best_key):
            best, best_key = record, key
    return best


def seed_spread(records, metric, seed_field="seed"):
    """Per setting (every swept field but the seed): the metric over seeds.

    Returns a list of dicts `{setting, n, mean, std, min, max}` in the order
    the settings first appear; std is the sample standard deviation (0 for one
    seed).
    """
    groups = {}
    for record in records:
        score = finite(record["metrics"].get(metric))
        if score is None:
            continue
        setting = {k: v for k, v in record["hparams"].items() if k != seed_field}
        groups.setdefault(repr(sorted(setting.items())), (setting, []))[1].append(score)
    rows = []
    for setting, scores in groups.values():
        rows.append({"setting": setting, "n": len(scores), "mean": statistics.fmean(scores),
                     "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                     "min": min(scores), "max": max(scores)})
    return rows


def format_summary(title, trials, records, statuses, metric, best):
    """The Markdown summary: one row per trial in sweep order, the best marked.

    Args:
        title: the heading.
        trials: [(trial_id, hparams)] in the sweep's order.
        records: {trial_id: result record} of finished trials.
        statuses: {trial_id: status text} of trials that did not finish
            ("running", "failed: ...").
        metric: the primary metric.
        best: the best record or None.
    """
    fields = list(dict.fromkeys(k for _, hparams in trials for k in hparams))
    finished = sum(1 for t, _ in trials if t in records)
    lines = [f"# {title}", ""]
    lines.append(f"{finished} of {len(trials)} trials finished. Selection: {TIE_BREAK}.")
    if best is not None:
        lines.append(f"Best: `{best['trial_id']}` ({metric} {best['metrics'][metric]:.4f}).")
    lines.append("")
    header = ["", "trial"] + fields + [metric, "eval_loss", "trained params", "wall s", "status"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for trial_id, hparams in trials:
        record = records.get(trial_id)
        mark = "*" if best is not None and trial_id == best["trial_id"] else ""
        row = [mark, f"`{trial_id}`"] + [_hparam_cell(hparams, f) for f in fields]
        if record is not None:
            m = record["metrics"]
            row += [_cell(m.get(metric)), _cell(m.get("eval_loss")),
                    f"{record['trained_params']:,}", f"{record['wall_seconds']:.0f}", "done"]
        else:
            row += ["", "", "", "", statuses.get(trial_id, "pending")]
        lines.append("| " + " | ".join(row) + " |")
    spread = seed_spread([records[t] for t, _ in trials if t in records], metric)
    if any("seed" in h for _, h in trials) and spread:
        lines += ["", f"## {metric} across seeds", "",
                  "| setting | seeds | mean | std | min | max |", "|---|---|---|---|---|---|"]
        for row in spread:
            setting = ",".join(f"{k}={v}" for k, v in row["setting"].items()) or "(all)"
            lines.append(f"| {setting} | {row['n']} | {row['mean']:.4f} | {row['std']:.4f} | "
                         f"{row['min']:.4f} | {row['max']:.4f} |")
    return "\n".join(lines) + "\n"


def _cell(value):
    if value is None or value == "":
        return "" if value == "" else "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.0e}"
    return str(value)


def _hparam_cell(hparams, field):
    if field not in hparams:
        return ""
    value = hparams[field]
    return repr(value) if isinstance(value, float) else str(value)
