"""Additional tasks, full fine-tuning of BERT-base: the baseline (paper, section 3.3).

  python run_classifier.py --hparams=hparams/extra_full_base.py --task_name=custom \
    --train_file=... --dev_file=... --test_file=... --text_fields=text \
    --output_dir=runs/extra_full_base/<task>

The adapters' learning rates and epochs: 12 trials per task.

Expected (paper, table 2): 73.7 average, 100% trained parameters per task;
not measured here.
"""

from bert_adapters.sweep import grid
from hparams import extra_adapters_base as base


def get_config():
    config = {**base.get_config(), "tuning": "full"}
    del config["adapter_init_scale"]
    return config


def get_sweep():
    return grid(learning_rate=base.LEARNING_RATES, num_train_epochs=base.EPOCHS)
