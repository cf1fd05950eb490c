"""`Examples`: one split of a classification task, whatever file it came from."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Examples:
    """The texts, labels and indices of one split, column by column.

    Args:
        texts_a: the first text of each example.
        texts_b: the second text of each example; `None` for single-text tasks.
        labels: `None` where the split has no labels (GLUE test splits);
            otherwise int64 indices into the task's `label_names`, or float32
            targets for a regression task (STS-B).
        indices: the identifier of each example as a string: the file's index
            column where it has one (test files: the submission's `index`),
            else the data-row numbers "0".."n-1".
        source: where the examples were read from (file path or TFDS split).
        label_names: the names the label indices point into (the task's;
            for a custom file read without a label set, the labels found).
    """

    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray | None
    indices: list[str]
    source: str
    label_names: tuple[str, ...] | None = None

    def __post_init__(self):
        n = len(self.texts_a)
        lengths = {"texts_a": n, "indices": len(self.indices)}
        if self.texts_b is not None:
            lengths["texts_b"] = len(self.texts_b)
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.ndim != 1:
                raise ValueError(f"{self.source}: labels must be 1-D, got shape "
                                 f"{self.labels.shape}")
            lengths["labels"] = len(self.labels)
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{self.source}: fields of different lengths {lengths}")

    @property
    def num_examples(self):
        return len(self.texts_a)

    def __len__(self):
        return self.num_examples
