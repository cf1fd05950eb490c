"""`bank predict`: JSON-lines requests answered by an exported bank's SavedModel.

Each input line is an object `{"task": ..., "text_a": ..., "text_b": ...}`
(more fields, such as an `index`, are copied through). Each output line, in
input order, is the input object plus `prediction` (the task's submission
label string; a float for a regression task, as its submission file writes
it) and `scores` (the task's class probabilities in the order of its labels;
regression: `[raw score]`). A line that cannot be answered (not JSON, an
unknown task, a missing or empty text) gets an `error` instead, naming its
line number and field; the other lines are still answered.

A span (SQuAD) task's line gives `question` and `context` (or `text_a` and
`text_b`); its `prediction` is the answer text and `scores` `[its n-best
probability]`. Every line, whatever its task's kind, is answered by the
bank's SavedModel (windows, best-span search and answer text included), so
the base is never rebuilt in Python; a row the SavedModel refuses (its
`error` output, e.g. a context without word pieces) becomes that line's
error.
"""

import json

import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.model import heads
from bert_adapters.bank.bank_builder import read_bank_record
from bert_adapters.bank.bank_task import BankError, check_span_texts, check_texts, task_key


def parse_request(line, tasks_by_key, where):
    """The request on one line, checked: (object, task record); raises BankError naming `where`."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as err:
        raise BankError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); expected "
                        f'an object like {{"task": "RTE", "text_a": "...", "text_b": "..."}}')
    if not isinstance(request, dict):
        raise BankError(f"{where}: expected a JSON object, found {type(request).__name__}")
    name = request.get("task")
    if not isinstance(name, str) or not name:
        raise BankError(f'{where}: field "task" must be a task name (string), found {name!r}')
    task = tasks_by_key.get(task_key(name))
    if task is None:
        known = ", ".join(t["name"] for t in tasks_by_key.values())
        raise BankError(f'{where}: field "task": unknown task {name!r}; this bank serves {known}')
    if task.get("kind") == heads.SPAN:
        # Name the fields as the line does: question/context or text_a/text_b.
        named = "question" in request or "context" in request
        fields = [next((f for f in pair if f in request), pair[0] if named else pair[1])
                  for pair in (("question", "text_a"), ("context", "text_b"))]
        check_span_texts(task["name"], request.get(fields[0]), request.get(fields[1]), where,
                         fields)
    else:
        check_texts(task["name"], task["text_mode"], request.get("text_a"),
                    request.get("text_b"), where)
    return request, task


def _texts(request, task):
    """(text_a, text_b) of a checked request: a span task's question and context."""
    if task.get("kind") == heads.SPAN:
        return (request["question"] if "question" in request else request["text_a"],
                request["context"] if "context" in request else request["text_b"])
    return request["text_a"], request.get("text_b") or ""


def predict_file(bank_dir, input_path, output_path, batch_size=32):
    """Answers every line of `input_path` into `output_path` (written atomically).

    Returns:
        (number of lines answered, [error message of each line that was not]).
    """
    record = read_bank_record(bank_dir)
    tasks_by_key = {task_key(t["name"]): t for t in record["tasks"]}
    if not io_utils.exists(input_path):
        raise BankError(f"--input {input_path} not found")
    lines = io_utils.read_text(input_path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The final newline.
    outputs, errors, pending = [None] * len(lines), [], []
    for number, line in enumerate(lines, start=1):
        try:
            request, task = parse_request(line, tasks_by_key, f"{input_path}:{number}")
        except BankError as err:
            outputs[number - 1] = _error_line(line, err, errors)
            continue
        pending.append((number - 1, request, task, _texts(request, task)))
    serve = tf.saved_model.load(bank_dir).signatures["serving_default"] if pending else None
    # A batch is padded to its longest request: batch requests of similar
    # lengths (answers still go out in input order).
    pending.sort(key=lambda p: len(p[3][0]) + len(p[3][1]))
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        result = serve(task=tf.constant([t["name"] for _, _, t, _ in batch]),
                       text_a=tf.constant([texts[0] for *_, texts in batch]),
                       text_b=tf.constant([texts[1] for *_, texts in batch]))
        for (row, request, task, _), label, scores, error in zip(
                batch, result["prediction"].numpy(), result["scores"].numpy(),
                result["error"].numpy()):
            if error:
                where = f"{input_path}:{row + 1}"
                outputs[row] = _error_line(lines[row], BankError(
                    f"{where}: {error.decode('utf-8')}"), errors)
                continue
            label = label.decode("utf-8")
            width = 1 if task["regression"] or task.get("kind") == heads.SPAN else len(
                task["labels"])
            outputs[row] = {**request,
                            "prediction": float(label) if task["regression"] else label,
                            "scores": [float(s) for s in scores[:width]]}
    io_utils.write_text(output_path, "".join(
        json.dumps(o, ensure_ascii=False) + "\n" for o in outputs))
    return sum("error" not in o for o in outputs), errors


def _error_line(line, err, errors):
    """The output line of a request that could not be answered; records the message."""
    errors.append(str(err))
    try:
        partial = json.loads(line)
    except json.JSONDecodeError:
        partial = None
    return {**(partial if isinstance(partial, dict) else {}), "error": str(err)}
