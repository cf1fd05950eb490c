"""The multi-task bank: one frozen BERT, many tasks' adapters, mixed-task batches, one SavedModel.

The paper's motivating service (Houlsby et al., 2019, section 1): tasks
arrive one after another, each adds a few percent of parameters, and one
shared model answers all of them. `TaskBank` loads a base encoder and task
artifacts (`run_classifier.py` and `run_squad.py` output directories),
predicts batches that mix tasks (classification rows and span windows) in one
forward pass, and exports everything as one SavedModel taking raw strings,
which answers every task kind on its own (a span task's windows, best-span
search and answer text included):

    python -m bert_adapters.bank export --task_dirs runs/rte runs/sst2 --output_dir banks/glue
    python -m bert_adapters.bank add --bank banks/glue --task_dir runs/stsb
    python -m bert_adapters.bank predict --bank banks/glue --input requests.jsonl \\
        --output predictions.jsonl

Building (`bank_builder`), answering (`bank_server` and the graph pieces
`span_tokens`, `span_windows`, `span_search`) and exporting (`bank_export`)
are separate modules; `TaskBank` ties them together. Nothing here imports
`bert_adapters.training`: artifacts are read with model code only.
"""

from bert_adapters.bank.bank_task import BankError, BankTask, read_bank_task, task_key
from bert_adapters.bank.task_bank import TaskBank

__all__ = ["BankError", "BankTask", "TaskBank", "read_bank_task", "task_key"]
