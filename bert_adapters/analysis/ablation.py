"""Layer ablation of trained adapters (paper, section 3.6, figure 6 left and centre).

  python -m bert_adapters.analysis ablate --task_dir runs/demo_mrpc --output_dir runs/ablation

For every contiguous span of layers [i, j] (L(L+1)/2 spans) the trained
adapters of those layers are switched off, without retraining, and the run's
dev split is evaluated again. A run with adapters in some layers only
(`--adapter_layers`) has nothing to switch off in the others: a span of
those alone scores as every adapter on. The model is built and traced once: the spans
only change the layers' `adapter_gate` variables, which the traced function
reads at run time (see `TransformerLayer`).

Writes to `--output_dir`:
  ablation.json  `matrix`: L x L, entry [i][j] the dev metric with layers
                 i..j ablated (0-based), null below the diagonal; `full`: the
                 metric with every adapter on; `metric`: its key in the run's
                 eval_results.json, values in the same units as there; and
                 what was evaluated (task, split, examples, base, traces).
  ablation.png   the change from `full` as an upper-triangle heatmap, layers
                 numbered from 1 as in the paper, single-layer diagonal and
                 all-layers corner outlined.

The task, its dev split, the tokenizer settings and the data location come
from the run's `run_config.json`; `--data_dir` points elsewhere for the data
(a GLUE task's folder or root, a custom task's folder, a SQuAD JSON file or
its folder).
"""

import contextlib
import dataclasses
import math
import time

import numpy as np
import tensorflow as tf
from absl import logging
from matplotlib import colormaps
from matplotlib.patches import Patch, Rectangle

from bert_adapters import checkpoints, io_utils
from bert_adapters.checkpoints import artifact
from bert_adapters.model import heads
from bert_adapters.analysis import AnalysisError, figures
from bert_adapters.analysis.sweep_results import read_json
from bert_adapters.model.bert_encoder import INPUT_NAMES
from bert_adapters.tasks.classification import ClassifierConfig
from bert_adapters.tasks.squad import SquadConfig
from bert_adapters.data.tokenization import BertTokenizer

RUN_CONFIG_FILE = "run_config.json"
EVAL_RESULTS_FILE = "eval_results.json"
JSON_FILE = "ablation.json"
PNG_FILE = "ablation.png"
# The config class that reads each task kind's run_config.json settings.
CONFIG_CLASSES = {heads.CLASSIFICATION: ClassifierConfig, heads.SPAN: SquadConfig}
SQUAD_DEV_FILE = "dev-v1.1.json"


# === The run ===
@dataclasses.dataclass
class Run:
    """A trained run, ready to evaluate.

    Args:
        task_dir: the run's output directory.
        config: its settings (a `RunConfig` subclass), set to evaluate only.
        kind_name: `heads.KINDS`.
        task_config: its artifact's task_config.json.
        recorded: its eval_results.json, or {}.
    """

    task_dir: str
    config: object
    kind_name: str
    task_config: dict
    recorded: dict

    def task_kind(self):
        """A fresh task kind: its caches never carry one span's outputs to the next."""
        return self.config.task_kind(self.task_config)


def load_run(task_dir, data_dir=None):
    """Reads a run's settings and artifact config; checks it has adapters to ablate."""
    path = io_utils.join(task_dir, RUN_CONFIG_FILE)
    record = read_json(path, "--task_dir must be a training run's output directory "
                              "(run_classifier.py or run_squad.py with --do_train), holding "
                              f"{RUN_CONFIG_FILE} and task_artifact/")
    settings = record.get("settings") if isinstance(record, dict) else None
    if not isinstance(settings, dict):
        raise AnalysisError(f"{path}: expected an object with the run's `settings`")
    kind_name = record.get("task_kind", heads.CLASSIFICATION)
    if kind_name not in CONFIG_CLASSES:
        raise AnalysisError(f"{path}: task_kind {kind_name!r} is not one of "
                            f"{sorted(CONFIG_CLASSES)}")
    try:
        config = CONFIG_CLASSES[kind_name].from_json(settings)
    except (TypeError, ValueError) as err:
        raise AnalysisError(f"{path}: settings: {err}") from None
    try:
        task_config = artifact.read_task_config(task_dir)
    except (FileNotFoundError, ValueError) as err:
        raise AnalysisError(f"--task_dir {task_dir}: {err}") from None
    if task_config.get("tuning") != "adapters" or not task_config.get("adapter_size"):
        raise AnalysisError(
            f"{artifact.resolve_artifact_dir(task_dir)}/{artifact.CONFIG_FILE}: the run trained "
            f"with tuning={task_config.get('tuning')!r}, adapter_size="
            f"{task_config.get('adapter_size')!r}; the ablation needs trained adapters "
            f"(tuning='adapters')")
    config = dataclasses.replace(config, do_train=False, do_eval=True, do_predict=False)
    config = _with_data_dir(config, data_dir)
    results_path = io_utils.join(task_dir, EVAL_RESULTS_FILE)
    recorded = read_json(results_path, "") if io_utils.exists(results_path) else {}
    return Run(task_dir, config, kind_name, task_config, recorded)


def _with_data_dir(config, data_dir):
    """`config` reading its dev data from `data_dir` (the field depends on the kind)."""
    if not data_dir:
        return config
    if isinstance(config, SquadConfig):
        if tf.io.gfile.isdir(data_dir):
            name = (config.predict_file or SQUAD_DEV_FILE).replace("\\", "/").split("/")[-1]
            return dataclasses.replace(config, predict_file=io_utils.join(data_dir, name))
        return dataclasses.replace(config, predict_file=data_dir)
    if config.dev_file:  # A custom task: its dev file, by name, in data_dir.
        name = config.dev_file.replace("\\", "/").split("/")[-1]
        return dataclasses.replace(config, dev_file=io_utils.join(data_dir, name))
    return dataclasses.replace(config, data_dir=data_dir)


def load_dev_split(run):
    """The run's primary dev split, tokenized as in training: (key, Split)."""
    config = run.config
    kind = run.task_kind()
    try:
        vocab_file, lower_case = checkpoints.locate_vocab(
            config.encoder, vocab_file=config.vocab_file, init_checkpoint=config.init_checkpoint)
        tokenizer = BertTokenizer(vocab_file, lower_case=lower_case,
                                  max_seq_length=config.max_seq_length)
        key = kind.eval_splits[0]
        splits = kind.load_splits(tokenizer)
    except (FileNotFoundError, ValueError, tf.errors.OpError) as err:
        where = getattr(config, "data_dir", None) or getattr(config, "predict_file", None)
        raise AnalysisError(f"reading the dev data of the run in {run.task_dir} "
                            f"(from {where or 'TFDS'}): {err}; pass --data_dir to read it "
                            f"from elsewhere") from None
    return key, splits[key]


# === One traced model, every span ===
class Predictor:
    """Float32 outputs of `model` on all rows of a split, from ONE traced function.

    Inputs are fed as `[batch, width]` tensors of any width, so batches of
    different lengths share the trace; the adapters' gates are variables, so
    switching them needs no re-trace either. `traces` counts the traces.
    """

    def __init__(self, model, batch_size, pad_multiple=8):
        self.batch_size = batch_size
        self.pad_multiple = pad_multiple
        spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES}

        @tf.function(input_signature=[spec])
        def predict(inputs):
            return tf.cast(model(inputs, training=False), tf.float32)

        self._predict = predict

    @property
    def traces(self):
        return self._predict.experimental_get_tracing_count()

    def __call__(self, features):
        """Outputs `[num_rows, ...]` in row order; sequence outputs padded to full width."""
        num_rows, width = features["input_mask"].shape
        lengths = features["input_mask"].sum(axis=1)
        order = np.argsort(lengths, kind="stable")  # Similar lengths pad little.
        outputs = np.empty(0)
        for start in range(0, num_rows, self.batch_size):
            rows = order[start:start + self.batch_size]
            cut = -(-int(lengths[rows].max()) // self.pad_multiple) * self.pad_multiple
            cut = max(1, min(width, cut))
            batch = {n: tf.constant(features[n][rows, :cut]) for n in INPUT_NAMES}
            out = self._predict(batch).numpy()
            if out.ndim >= 3 and out.shape[1] < width:
                out = np.pad(out, [(0, 0), (0, width - out.shape[1])] + [(0, 0)] * (out.ndim - 2))
            if start == 0:
                outputs = np.empty((num_rows,) + out.shape[1:], np.float32)
            outputs[rows] = out
        return outputs


@contextlib.contextmanager
def ablated(encoder, first, last):
    """Adapters of layers first..last (0-based, inclusive; empty if last < first) off.

    Every adapter is on again afterwards.
    """
    encoder.set_adapters_enabled(True)
    if last >= first:
        encoder.set_adapters_enabled(False, layers=range(first, last + 1))
    try:
        yield
    finally:
        encoder.set_adapters_enabled(True)


def ablation_matrix(encoder, score):
    """(full, matrix): `score()` with every adapter on, and with each span off.

    Args:
        encoder: a `BertEncoder` with adapters.
        score: `fn() -> float`, the metric of the current model.

    Returns:
        `full` and an L x L list, [i][j] the score with layers i..j ablated
        for i <= j, None below the diagonal.
    """
    num_layers = encoder.config.num_layers
    with ablated(encoder, 0, -1):
        full = score()
    matrix = [[None] * num_layers for _ in range(num_layers)]
    for first in range(num_layers):
        for last in range(first, num_layers):
            with ablated(encoder, first, last):
                matrix[first][last] = score()
            logging.info("Layers %d..%d ablated: %.4f (all on: %.4f)", first + 1, last + 1,
                         matrix[first][last], full)
    return full, matrix


def run_ablation(task_dir, data_dir=None, metric=None, batch_size=None):
    """Evaluates every span of a run's adapters; returns the ablation.json record."""
    started = time.time()
    run = load_run(task_dir, data_dir)
    kind = run.task_kind()
    metric = metric or kind.primary_metric
    key, split = load_dev_split(run)
    try:
        model, encoder, _ = artifact.load_task_model(task_dir)
    except (FileNotFoundError, ValueError) as err:
        raise AnalysisError(f"loading the task model of {task_dir}: {err}") from None
    predictor = Predictor(model, batch_size or run.config.eval_batch_size)

    def score():
        values = run.task_kind().evaluate(split, predictor(split.features))
        if metric not in values:
            raise AnalysisError(f"--metric {metric!r} is not a metric of {kind.task_name}: "
                                f"expected one of {sorted(values)}")
        return float(values[metric])

    full, matrix = ablation_matrix(encoder, score)
    recorded = run.recorded.get(metric)
    if isinstance(recorded, (int, float)) and abs(recorded - full) > 1e-3 * max(1.0, abs(full)):
        logging.warning("All adapters on gives %s=%.5f, but %s records %.5f", metric, full,
                        EVAL_RESULTS_FILE, recorded)
    return {
        "metric": metric, "full": full, "matrix": matrix,
        "num_layers": encoder.config.num_layers, "task": kind.task_name, "task_kind": kind.name,
        "split": key, "num_eval_examples": kind.num_examples(split),
        "encoder": run.task_config.get("encoder_source"),
        "adapter_size": run.task_config.get("adapter_size"),
        "adapter_layers": run.task_config.get("adapter_layers"),
        "recorded_full": recorded if isinstance(recorded, (int, float)) else None,
        "traces": predictor.traces, "wall_seconds": round(time.time() - started, 1),
        "layout": "matrix[i][j]: dev metric with the adapters of layers i..j (0-based, "
                  "inclusive) switched off; null for i > j",
    }


# === The heatmap ===
def plot_ablation(result, path):
    """The change from `full` for every span, upper triangle, layers from 1."""
    num_layers = result["num_layers"]
    metric, scale = result["metric"], figures.metric_scale(result.get("task_kind"))
    change = np.full((num_layers, num_layers), np.nan)
    for i, row in enumerate(result["matrix"]):
        for j, value in enumerate(row):
            if value is not None and i <= j:
                change[i, j] = (value - result["full"]) * scale
    finite = change[np.isfinite(change)]
    limit = float(np.abs(finite).max()) if finite.size else 0.0
    limit = limit if limit > 0 else 1.0

    figure = figures.new_figure(figures.ABLATION_SIZE)
    ax = figure.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad="#e6e6e6")  # Below the diagonal: no span.
    image = ax.imshow(np.ma.masked_invalid(change), cmap=cmap, vmin=-limit, vmax=limit)
    bar = figure.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label(f"change in dev {metric} from all adapters on "
                  f"({figures.points_unit(metric)})")
    labels = [str(k + 1) for k in range(num_layers)]
    ax.set_xticks(range(num_layers), labels=labels)
    ax.set_yticks(range(num_layers), labels=labels)
    ax.set_xlabel("last layer ablated (layer number, 1 = lowest)")
    ax.set_ylabel("first layer ablated (layer number, 1 = lowest)")
    if num_layers <= 16:
        size = 9 if num_layers <= 8 else 7 if num_layers <= 12 else 5
        for i in range(num_layers):
            for j in range(i, num_layers):
                if math.isfinite(change[i, j]):
                    dark = abs(change[i, j]) > 0.6 * limit
                    ax.text(j, i, f"{change[i, j]:+.1f}", ha="center", va="center",
                            fontsize=size, color="white" if dark else "black")
    for k in range(num_layers):
        ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="limegreen",
                               linewidth=2))
    ax.add_patch(Rectangle((num_layers - 1.5, -0.5), 1, 1, fill=False, edgecolor="black",
                           linewidth=2.5, linestyle="--"))
    ax.legend(handles=[
        Patch(facecolor="none", edgecolor="limegreen", linewidth=2,
              label="one layer's adapters (diagonal)"),
        Patch(facecolor="none", edgecolor="black", linewidth=2, linestyle="--",
              label=f"all {num_layers} layers' adapters"),
        Patch(facecolor="#e6e6e6", edgecolor="none", label="not a span (first > last)"),
    ], loc="lower left", fontsize=8, framealpha=0.9)
    base = result.get("encoder") or "unknown base"
    figure.suptitle(
        f"Adapter ablation: {result['task']} {result['split']}, {base} "
        f"(adapters m={result.get('adapter_size')}"
        f"{', layers ' + result['adapter_layers'] if result.get('adapter_layers') else ''})\n"
        f"all adapters on: {metric} {result['full'] * scale:.1f}"
        f"{figures.metric_unit(metric).replace('x100', ' (x100)')}; "
        f"{result['num_eval_examples']} examples", fontsize=11)
    figures.save_png(figure, path)


def write_ablation(task_dir, output_dir, data_dir=None, metric=None, batch_size=None):
    """The `ablate` command: evaluates, then writes ablation.png and ablation.json.

    Nothing is written until every span is evaluated; the JSON comes last.
    """
    result = run_ablation(task_dir, data_dir, metric, batch_size)
    io_utils.makedirs(output_dir)
    plot_ablation(result, io_utils.join(output_dir, PNG_FILE))
    io_utils.write_json(io_utils.join(output_dir, JSON_FILE), result)
    return result
