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
probability]`. The SavedModel does not answer span tasks, so their lines are
answered by the Python bank rebuilt from the bank directory
(`TaskBank.from_directory`), as `run_squad.py --do_predict` would.
"""

import json

import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.model import heads
from bert_adapters.bank.bank_task import BankError, check_span_texts, check_texts, task_key
from bert_adapters.bank.task_bank import BANK_FILE, TaskBank


def read_bank_record(bank_dir):
    path = io_utils.join(bank_dir, BANK_FILE)
    if not io_utils.exists(path):
        raise BankError(f"{path} not found: --bank must be a directory written by "
                        f"`python -m bert_adapters.bank export`")
    return io_utils.read_json(path)


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


def _span_texts(request):
    """(question, context) of a checked span request."""
    return (request["question"] if "question" in request else request["text_a"],
            request["context"] if "context" in request else request["text_b"])


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
            errors.append(str(err))
            try:
                partial = json.loads(line)
            except json.JSONDecodeError:
                partial = None
            outputs[number - 1] = {**(partial if isinstance(partial, dict) else {}),
                                   "error": str(err)}
            continue
        pending.append((number - 1, request, task))
    spans = [p for p in pending if p[2].get("kind") == heads.SPAN]
    pending = [p for p in pending if p[2].get("kind") != heads.SPAN]
    if spans:
        bank = TaskBank.from_directory(bank_dir)
        questions, contexts = zip(*(_span_texts(r) for _, r, _ in spans))
        answers, scores = bank.predict_mixed([t["name"] for _, _, t in spans], questions,
                                             contexts, batch_size=batch_size,
                                             return_scores=True)
        for (row, request, _), answer, score in zip(spans, answers, scores):
            outputs[row] = {**request, "prediction": answer,
                            "scores": [float(s) for s in score]}
    serve = tf.saved_model.load(bank_dir).signatures["serving_default"] if pending else None
    # A batch is padded to its longest request: batch requests of similar
    # lengths (answers still go out in input order).
    pending.sort(key=lambda p: len(p[1]["text_a"]) + len(p[1].get("text_b") or ""))
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        result = serve(task=tf.constant([t["name"] for _, _, t in batch]),
                       text_a=tf.constant([r["text_a"] for _, r, _ in batch]),
                       text_b=tf.constant([r.get("text_b") or "" for _, r, _ in batch]))
        for (row, request, task), label, scores in zip(
                batch, result["prediction"].numpy(), result["scores"].numpy()):
            label = label.decode("utf-8")
            width = 1 if task["regression"] else len(task["labels"])
            outputs[row] = {**request,
                            "prediction": float(label) if task["regression"] else label,
                            "scores": [float(s) for s in scores[:width]]}
    io_utils.write_text(output_path, "".join(
        json.dumps(o, ensure_ascii=False) + "\n" for o in outputs))
    return len(pending) + len(spans), errors
