"""Additional tasks, variable fine-tuning of BERT-base's top n layers (paper, section 3.3).

  python run_classifier.py --hparams=hparams/extra_topk_base.py --task_name=custom \
    --train_file=... --dev_file=... --test_file=... --text_fields=text \
    --output_dir=runs/extra_topk_base/<task>

top n in {1, 2, 3, 5, 7, 9, 11, 12} x the adapters' learning rates and epochs
= 96 trials per task.

Expected (paper, table 2): 72.5 average with 52.9% trained parameters per
task (the best n per task); not measured here.
"""

from bert_adapters.sweep import grid
from hparams import extra_adapters_base as base


def get_config():
    config = {**base.get_config(), "tuning": "top_k"}
    del config["adapter_init_scale"]
    return config


def get_sweep():
    return grid(learning_rate=base.LEARNING_RATES, num_train_epochs=base.EPOCHS,
                num_tuned_layers=[1, 2, 3, 5, 7, 9, 11, 12])
