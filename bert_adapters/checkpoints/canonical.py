"""The canonical weight layout that every checkpoint format is translated into.

Each format module describes its file as a table `{canonical name: Entry}`:
the tensor's name in the file, the shape it must have there and the function
that turns it into the canonical `[in, out]` layout. `translate` applies such a
table and fails early, in the file's own names, on anything missing,
mis-shaped or left over. The canonical names are those of
`BertEncoder.weight_map()`.
"""

import collections

import numpy as np

from bert_adapters.model.bert_encoder import is_adapter_weight

# name: the tensor's name in the checkpoint file; shape: its shape there;
# transform: array in the file's layout -> array in the canonical layout.
Entry = collections.namedtuple("Entry", ["name", "shape", "transform"])

# How many names an error message lists before it says "... and N more".
_MAX_LISTED = 20


def identity(x):
    return x


def transpose(x):
    return np.transpose(x)


def reshape_to(*shape):
    """A transform that reshapes to `shape` (heads merged, no transpose)."""
    return lambda x: np.reshape(x, shape)


def adapter_names(layer, slot):
    """Canonical names of one adapter: `slot` is attention_adapter or output_adapter."""
    return {part: f"layer_{layer}/{slot}/{part}" for part in
            ("down/kernel", "down/bias", "up/kernel", "up/bias")}


def _listed(names):
    names = list(names)
    if len(names) <= _MAX_LISTED:
        return str(names)
    return f"{names[:_MAX_LISTED]} ... and {len(names) - _MAX_LISTED} more"


def translate(tensors, table, source, ignored=()):
    """Applies a format's name table to the tensors read from its file.

    Args:
        tensors: dict {name in the file: np.ndarray}, already stripped of the
            tensors a format skips (optimizer slots, pre-training heads).
        table: dict {canonical name: Entry}. Entries for adapter weights are
            optional (a checkpoint without adapters leaves them at init);
            every other entry must be present.
        source: str naming the file or directory, quoted in errors.
        ignored: names in `tensors` that may stay unused.

    Returns:
        dict {canonical name: np.ndarray} in the canonical layout.

    Raises:
        ValueError listing every missing tensor, every shape mismatch (name,
        expected, found) and every tensor the table does not use.
    """
    weights, missing, mismatched = {}, [], []
    used = set()
    for canonical, entry in table.items():
        if entry.name not in tensors:
            if not is_adapter_weight(canonical):
                missing.append(entry.name)
            continue
        used.add(entry.name)
        value = np.asarray(tensors[entry.name])
        if tuple(value.shape) != tuple(entry.shape):
            mismatched.append(f"{entry.name}: expected {tuple(entry.shape)}, "
                              f"found {tuple(value.shape)}")
            continue
        weights[canonical] = entry.transform(value)
    unexpected = sorted(set(tensors) - used - set(ignored))
    problems = []
    if missing:
        problems.append(f"missing tensors: {_listed(missing)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listed(mismatched)}")
    if unexpected:
        problems.append(f"unexpected tensors (not part of a BERT encoder): {_listed(unexpected)}")
    if problems:
        raise ValueError(f"Cannot read the BERT checkpoint {source}: " + "; ".join(problems))
    return weights


def adapter_size(weights):
    """The bottleneck size of the adapters in canonical `weights`, or None.

    Raises ValueError if the adapters disagree on their size.
    """
    sizes = {int(np.shape(v)[-1]) for k, v in weights.items()
             if is_adapter_weight(k) and k.endswith("/down/kernel")}
    if len(sizes) > 1:
        raise ValueError(f"The checkpoint's adapters have different sizes: {sorted(sizes)}")
    return sizes.pop() if sizes else None
