"""Reads a split of a GLUE task from TensorFlow Datasets (`glue/<config>`).

The dataset must already be prepared in `tfds_data_dir` (or TFDS's default
directory): this loader never downloads, so an offline machine fails at once
with an error that says what to pass instead, rather than hanging on the
network. Prepare it once with `tfds build glue/<config>` where there is a
network, or pass the GLUE TSV files with `--data_dir`.

TFDS ClassLabel indices are mapped to the task's label indices by NAME
(`Task.tfds_labels`): TFDS orders MNLI [entailment, neutral, contradiction],
the task [contradiction, entailment, neutral].
"""

import numpy as np

from bert_adapters.data.examples import Examples
from bert_adapters.data.registry import get_task

_BATCH_SIZE = 4096  # Examples per batch when reading: far faster than one by one.


def load_tfds_split(task, split, tfds_data_dir=None):
    """Reads one split of a GLUE task from TFDS.

    Args:
        task: a `Task` or a task name.
        split: a split name of the task (`"dev"`, `"dev_matched"`, ...; TFDS
            names such as `"validation"` are accepted).
        tfds_data_dir: TFDS's data directory; `None` for TFDS's default.

    Returns:
        `Examples`; `indices` are TFDS's `idx`; `labels` is `None` for test
        splits (TFDS stores -1 there).

    Raises:
        FileNotFoundError: the dataset is not prepared there (offline, or not
            built yet).
    """
    import tensorflow_datasets as tfds  # Slow to import: only when used.

    task = get_task(task)
    split = task.resolve_split(split)
    if task.tfds_name is None or split not in task.tfds_splits:
        raise ValueError(f"task {task.name} split {split!r} is not in TFDS; pass --data_dir")
    tfds_split = task.tfds_splits[split]
    source = f"tfds:{task.tfds_name}/{tfds_split}"
    if tfds_data_dir:
        source += f" in {tfds_data_dir}"
    try:
        dataset, info = tfds.load(task.tfds_name, split=tfds_split, data_dir=tfds_data_dir,
                                  download=False, with_info=True)
    except Exception as e:  # noqa: BLE001 - TFDS raises AssertionError, OSError, ...
        raise FileNotFoundError(
            f"could not read {source}: {type(e).__name__}: {e}\n"
            f"TFDS datasets are never downloaded here. Either pass --data_dir with the GLUE "
            f"TSV files of {task.name} ($GLUE_DIR/{task.folder}), or prepare the dataset "
            f"(`tfds build {task.tfds_name}` on a machine with network access) and pass "
            f"its directory with --tfds_data_dir.") from e

    text_features = task.tfds_text_features
    columns = {name: [] for name in text_features + ("label", "idx")}
    for batch in tfds.as_numpy(dataset.batch(_BATCH_SIZE)):
        for name in columns:
            columns[name].append(batch[name])
    columns = {name: np.concatenate(parts) if parts else np.zeros([0])
               for name, parts in columns.items()}
    if len(columns["idx"]) == 0:
        raise ValueError(f"{source}: no examples")

    texts = [[t.decode("utf-8") for t in columns[name]] for name in text_features]
    indices = [str(int(i)) for i in columns["idx"]]
    labels = None
    if not task.is_test_split(split):
        labels = _map_labels(task, columns["label"], info.features["label"], source)
    return Examples(texts_a=texts[0], texts_b=texts[1] if len(texts) > 1 else None,
                    labels=labels, indices=indices, source=source,
                    label_names=task.label_names)


def _map_labels(task, raw, feature, source):
    """TFDS labels -> the task's label indices (by name) or float targets."""
    if task.is_regression:
        return raw.astype(np.float32)
    raw = raw.astype(np.int64)
    if np.any(raw < 0):
        raise ValueError(f"{source}: {int(np.sum(raw < 0))} examples have no label (-1) "
                         f"in a split that should be labelled")
    tfds_names = list(feature.names)
    unknown = sorted(set(tfds_names) - set(task.tfds_labels))
    if unknown:
        raise ValueError(f"{source}: TFDS label names {unknown} have no mapping in task "
                         f"{task.name} (known: {dict(task.tfds_labels)})")
    to_task = np.array([task.label_index(task.tfds_labels[n]) for n in tfds_names],
                       dtype=np.int64)
    return to_task[raw]
