"""`--adapter_layers=i-j`: a span of Transformer layers, 1-based and inclusive.

Layers are numbered from 1 (the lowest, next to the embeddings) to L, as in
the paper's figure 6. The span is written `i-j` on the command line, in
hparams files and in task artifacts; the model takes it as `(i, j)`.
"""

FLAG = "--adapter_layers"
FORM = "i-j with 1 <= i <= j (1-based, inclusive; e.g. 3-6)"


def parse_layer_span(value, num_layers=None):
    """`(first, last)` of `value` ("i-j", or a pair of ints); None stays None.

    With `num_layers`, the span must lie in 1..num_layers as well.

    Raises:
        ValueError: naming `--adapter_layers`, the value and the form expected.
    """
    if value is None:
        return None
    span = _pair(value)
    if span is None:
        raise ValueError(f"{FLAG}={value!r}: expected {FORM}")
    first, last = span
    if first < 1:
        raise ValueError(f"{FLAG}={format_layer_span(span)}: layers are numbered from 1: "
                         f"expected {FORM}")
    if first > last:
        raise ValueError(f"{FLAG}={format_layer_span(span)}: the first layer {first} is above "
                         f"the last {last}: expected {FORM}")
    if num_layers is not None and last > num_layers:
        raise ValueError(f"{FLAG}={format_layer_span(span)}: the encoder has {num_layers} "
                         f"layers: expected i-j with 1 <= i <= j <= {num_layers}")
    return span


def format_layer_span(span):
    """`"i-j"` of `(i, j)`; None stays None."""
    return None if span is None else f"{span[0]}-{span[1]}"


def _pair(value):
    """`(i, j)` of "i-j" or of a pair of ints, else None."""
    if isinstance(value, str):
        parts = value.strip().split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            return None
        return int(parts[0]), int(parts[1])
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    return None
