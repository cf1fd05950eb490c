"""What every analysis figure shares: the Agg canvas, fixed sizes, units, files.

Figures are drawn on matplotlib's non-interactive Agg canvas directly
(`Figure` + `FigureCanvasAgg`, no pyplot): nothing needs a display and no
global backend is switched. Each figure has a fixed size in inches at a fixed
dpi and is saved without "tight" cropping, so its pixel size is known
(`pixel_size`). Files are written atomically (`io_utils`).
"""

import csv
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert_adapters import io_utils
from bert_adapters.model import heads

DPI = 100
# Width, height in inches of each figure.
ABLATION_SIZE = (7.0, 6.0)
INIT_SCALE_SIZE = (7.0, 4.5)
TRADEOFF_SIZE = (8.0, 5.0)
ADAPTER_LAYERS_SIZE = (7.0, 6.5)

# Orange adapters and blue top-k as in the paper's figures 3 and 4, green LayerNorm.
METHOD_COLORS = {"adapters": "tab:orange", "top_k": "tab:blue", "layer_norm": "tab:green",
                 "full": "black"}
# Metrics that are a share of examples (plotted as %); the others are
# correlations (plotted x100).
_PERCENT_METRICS = ("accuracy", "f1", "macro_f1", "exact_match")


def pixel_size(size_inches):
    """(width, height) in pixels of a figure of `size_inches` saved here."""
    return int(round(size_inches[0] * DPI)), int(round(size_inches[1] * DPI))


def new_figure(size_inches):
    figure = Figure(figsize=size_inches, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path):
    """Writes `figure` as a PNG of exactly `pixel_size(figsize)` pixels, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    io_utils.write_bytes(path, buffer.getvalue())


def write_csv(path, columns, rows):
    """Writes dict `rows` with header `columns` atomically; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row[c]) for c in columns})
    io_utils.write_text(path, buffer.getvalue())


def metric_scale(kind):
    """Factor from a task kind's eval_results.json units to plotted points.

    Classification metrics are fractions (accuracy 0.85); SQuAD's exact match
    and F1 are already percentages, as the official script prints them.
    """
    return 1.0 if kind == heads.SPAN else 100.0


def metric_unit(metric):
    """The unit of a metric after `metric_scale`: `%` or `x100`."""
    return "%" if metric in _PERCENT_METRICS else "x100"


def points_unit(metric):
    """The unit of a difference of two scaled values of `metric`."""
    return "percentage points" if metric in _PERCENT_METRICS else "points x100"


def task_errorbars(ax, rows, x_key, label):
    """One line per task of `rows`: mean ± std of the scaled metric against `x_key`.

    Yields (task, its rows, their scale, x values, the line's colour) so the
    caller can draw more in the same colour.
    """
    for task in dict.fromkeys(r["task"] for r in rows):
        points = [r for r in rows if r["task"] == task]
        scale = metric_scale(points[0]["kind"])
        x = [r[x_key] for r in points]
        line = ax.errorbar(x, [r["mean"] * scale for r in points],
                           yerr=[r["std"] * scale for r in points], marker="o", capsize=3,
                           label=f"{task} ({points[0]['metric']}), {label}")
        yield task, points, scale, x, line.lines[0].get_color()


def metric_axis_label(rows):
    """`dev <metric> (<unit>)`, or `dev metric (<units>)` when the rows' metrics differ."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    metric = metrics[0] if len(metrics) == 1 else "metric"
    units = sorted({metric_unit(m) for m in metrics})
    return f"dev {metric} ({', '.join(units)})"


def join_names(names, limit=4):
    """`a, b, c` or `a, b, c, d + 3 more` for titles."""
    names = list(dict.fromkeys(names))
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" + {len(names) - limit} more"
