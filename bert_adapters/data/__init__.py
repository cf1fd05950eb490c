"""Data for classification tasks: the GLUE registry, GLUE TSV / TFDS / custom readers.

`load_split(task, split, data_dir, tfds_data_dir)` is the one entry point of
the trainer: it reads a custom task's files, GLUE TSV files when `data_dir` is
given, and TFDS otherwise, always into `Examples`.
"""

from bert_adapters.data.custom import (load_custom_split, load_custom_task_split,
                                       make_custom_task, read_custom_labels)
from bert_adapters.data.examples import Examples
from bert_adapters.data.glue_tsv import load_glue_split
from bert_adapters.data.registry import GLUE_TASKS, Task, TsvLayout, get_task, tasks_predicted_by
from bert_adapters.data.tfds_glue import load_tfds_split

__all__ = ["Examples", "GLUE_TASKS", "Task", "TsvLayout", "get_task", "load_custom_split",
           "load_glue_split", "load_split", "load_tfds_split", "make_custom_task",
           "read_custom_labels", "tasks_predicted_by"]


def load_split(task, split, data_dir=None, tfds_data_dir=None):
    """Reads one split of a task into `Examples`.

    Args:
        task: a `Task` (GLUE or from `make_custom_task`) or a GLUE task name.
        split: a split of the task (`"train"`, `"dev"`, `"test"`,
            `"dev_matched"`, ...).
        data_dir: GLUE: the task's folder (`$GLUE_DIR/MRPC`) or the GLUE root;
            custom: the folder holding `<split>.csv|.tsv|.jsonl`. `None` reads
            a GLUE task from TFDS.
        tfds_data_dir: TFDS's data directory, when reading from TFDS.
    """
    task = get_task(task)
    if task.custom_format is not None:
        if not data_dir:
            raise ValueError(f"custom task {task.name}: pass --data_dir, the folder holding "
                             f"train / dev / test files (.csv, .tsv or .jsonl)")
        return load_custom_task_split(task, split, data_dir)
    if data_dir:
        return load_glue_split(task, split, data_dir)
    return load_tfds_split(task, split, tfds_data_dir)
