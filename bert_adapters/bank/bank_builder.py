"""Building a bank: a base encoder, its tokenizer and task artifacts, checked against each other.

Kept apart from answering (`bank_server`, the SavedModel) because building
needs files and Python (artifacts, the base's checkpoint, its vocabulary)
while answering must not: a bank is built once, by `TaskBank.load` or
`TaskBank.from_directory`, and answers from its SavedModel alone. Every
check that can refuse a task runs here, before anything is exported: the
artifact's base fingerprint, span windows that fit the base, task names.
"""

from bert_adapters import checkpoints, io_utils
from bert_adapters.bank.bank_task import BankError, read_bank_task
from bert_adapters.checkpoints import artifact
from bert_adapters.data.tokenization import BertTokenizer
from bert_adapters.model.bert_encoder import BertEncoder

FORMAT_VERSION = 1
BANK_FILE = "bank.json"
TASKS_DIR = "tasks"
DEFAULT_MAX_SEQ_LENGTH = 128  # run_classifier.py's default
BASE_FIELDS = ("encoder_source", "init_checkpoint", "bert_config_file", "vocab_file")


def read_tasks(task_dirs):
    """The `BankTask`s of `task_dirs`: directories, `(name, dir)` pairs or a {name: dir} dict."""
    items = task_dirs.items() if isinstance(task_dirs, dict) else task_dirs
    named = [item if isinstance(item, tuple) else (None, item) for item in items]
    tasks = [read_bank_task(directory, name) for name, directory in named]
    if not tasks:
        raise BankError("a bank needs at least one task artifact")
    return tasks


def default_max_seq_length(tasks):
    """The longest classification task's training length (128 if none says).

    A bank of span tasks only takes their windows' length (unused but valid):
    span tasks cut contexts into windows of their own training length.
    """
    return max([int(t.config.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
                for t in tasks if not t.is_span] or [t.max_seq_length for t in tasks])


def base_record(tasks):
    """{encoder_source, init_checkpoint, bert_config_file, vocab_file} the first task names."""
    return {field: tasks[0].config.get(field) for field in BASE_FIELDS}


def load_base(base, record, max_seq_length):
    """(encoder, tokenizer, record) of `base`: a `BertEncoder`, a `load_encoder` source or None.

    None reads the base `record` names; a source replaces the record.
    """
    if isinstance(base, BertEncoder):
        encoder = base
    else:
        if base is not None:
            record = {"encoder_source": str(base), "init_checkpoint": None,
                      "bert_config_file": None, "vocab_file": None}
        try:
            encoder = checkpoints.load_encoder(record.get("encoder_source"),
                                               init_checkpoint=record.get("init_checkpoint"),
                                               bert_config_file=record.get("bert_config_file"))
        except (ValueError, FileNotFoundError, OSError) as err:
            raise BankError(f"cannot read the base encoder {record.get('encoder_source')!r}: "
                            f"{err}") from None
    if not 2 < max_seq_length <= encoder.config.max_sequence_length:
        raise BankError(f"max_seq_length={max_seq_length}: expected 3 to the base's "
                        f"{encoder.config.max_sequence_length} position embeddings")
    vocab_file, lower_case = checkpoints.locate_vocab(
        record.get("encoder_source"), vocab_file=record.get("vocab_file"),
        init_checkpoint=record.get("init_checkpoint"))
    tokenizer = BertTokenizer(vocab_file, lower_case=lower_case, max_seq_length=max_seq_length)
    return encoder, tokenizer, dict(record)


def check_task(task, others, encoder, fingerprint, record):
    """Raises BankError unless `task` can join `others` on this base.

    The message names the artifact: another base (both fingerprints), span
    windows that do not fit the base, or a name already taken.
    """
    config_path = io_utils.join(task.source, artifact.CONFIG_FILE)
    if task.fingerprint != fingerprint:
        raise BankError(
            f"{config_path} was trained on a base with fingerprint {task.fingerprint} "
            f"({task.config.get('encoder_source')!r}), but this bank's base "
            f"({record.get('encoder_source')!r}) has fingerprint {fingerprint}: adapters only "
            f"work on the exact base they were trained on")
    if task.is_span:
        positions = encoder.config.max_sequence_length
        length, query = task.max_seq_length, task.span_setting("max_query_length")
        if length > positions or query + 3 >= length:
            raise BankError(
                f"{config_path}: span windows of max_seq_length={length} with "
                f"max_query_length={query} do not fit this base ({positions} positions; the "
                f"query needs room for the context)")
    for other in others:
        if other.key == task.key:
            raise BankError(
                f"{task.source}: the bank already has a task named {other.name!r} (from "
                f"{other.source}); task names are case-insensitive. Give one of them another "
                f"name (NAME=DIR on the command line)")


def read_bank_record(bank_dir):
    """The `bank.json` of an exported bank, checked; raises BankError naming the file."""
    path = io_utils.join(bank_dir, BANK_FILE)
    if not io_utils.exists(path):
        raise BankError(f"{path} not found: {bank_dir} is not a bank exported by "
                        f"`python -m bert_adapters.bank export`")
    record = io_utils.read_json(path)
    if record.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{path}: format_version {record.get('format_version')!r}, "
                        f"expected {FORMAT_VERSION}")
    return record


def read_bank_tasks(bank_dir, record):
    """The `BankTask`s of an exported bank, from its copies of the artifacts."""
    return [read_bank_task(io_utils.join(bank_dir, t["artifact"]), t["name"])
            for t in record["tasks"]]
