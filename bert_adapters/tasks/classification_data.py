"""Which classification task and which splits a run reads, from its settings.

`ClassificationKind` asks only for "the task" and "the splits this run needs"; GLUE
(TSV or TFDS) and custom files are told apart here, by the registry's data,
never by task name. Tasks predicted by another task's model (AX by MNLI) are
read as extra test splits named `<TASK>:<split>`.
"""

import os

from absl import logging

from bert_adapters import data, io_utils


def resolve_task(config, artifact_config=None):
    """The `Task` of a run: a GLUE task by name, or a custom task from files."""
    if config.task_name.strip().lower() != "custom":
        return data.get_task(config.task_name)
    if not config.text_fields:
        raise ValueError("--task_name=custom needs --text_fields (one or two column names)")
    labels = config.labels
    if labels is None and artifact_config is not None:
        labels = artifact_config["label_names"]
    if labels is None:
        if not config.train_file:
            raise ValueError("--task_name=custom needs --train_file (or --labels) to know the "
                             "label set")
        labels = data.read_custom_labels(config.train_file, config.label_field or "label")
    return data.make_custom_task(labels, config.text_fields, config.label_field or "label")


def _custom_file(config, split):
    return {"train": config.train_file, "dev": config.dev_file, "test": config.test_file}[split]


def _needed_splits(task, config):
    needed = []
    if config.do_train:
        needed.append(task.train_split)
    if config.do_eval:
        needed.extend(task.eval_splits)
    if config.do_predict:
        needed.extend(task.test_files)
    return needed


def load_splits(task, config):
    """{split: Examples} for every split this run needs; extra tasks as `AX:test`."""
    splits = {}
    for split in _needed_splits(task, config):
        if task.custom_format is not None:
            path = _custom_file(config, split)
            if not path:
                raise ValueError(f"--task_name=custom: this run needs the {split} split; "
                                 f"pass --{split}_file")
            fmt = task.custom_format
            splits[split] = data.load_custom_split(
                path, fmt.text_fields, label_field=fmt.label_field, labels=task.label_names,
                labels_required=not task.is_test_split(split))
        else:
            splits[split] = data.load_split(task, split, config.data_dir, config.tfds_data_dir)
        if splits[split].num_examples == 0:
            raise ValueError(f"{splits[split].source}: the {split} split is empty")
    if config.do_predict and task.custom_format is None:
        for extra in data.tasks_predicted_by(task):
            for split in extra.test_files:
                examples = _load_extra(extra, split, config)
                if examples is not None:
                    splits[f"{extra.name}:{split}"] = examples
    return splits


def _load_extra(task, split, config):
    """AX's test set, next to the MNLI folder or in the GLUE root; None if absent."""
    if not config.data_dir:
        return data.load_split(task, split, None, config.tfds_data_dir)
    root = config.data_dir.rstrip("/")
    for candidate in (root, os.path.dirname(root)):
        folder = io_utils.join(candidate, task.folder) if candidate else task.folder
        if io_utils.exists(folder):
            return data.load_split(task, split, folder)
    logging.warning("No %s data next to %s (looked for a %r folder): %s is not predicted",
                    task.name, config.data_dir, task.folder, task.submission_file(split))
    return None


def prediction_files(task, splits):
    """{split key: submission file name} for every test split loaded."""
    files = {}
    for key in splits:
        owner, split = task_of_split(task, key), split_name(key)
        if split in owner.test_files and owner.is_test_split(split):
            files[key] = owner.submission_file(split)
    return files


def task_of_split(task, key):
    return data.get_task(key.split(":")[0]) if ":" in key else task


def split_name(key):
    return key.split(":")[-1]
