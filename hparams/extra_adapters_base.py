"""Additional classification tasks with adapters on BERT-base (paper, section 3.3).

  python run_classifier.py --hparams=hparams/extra_adapters_base.py \
    --task_name=custom --train_file=$TASK/train.csv --dev_file=$TASK/dev.csv \
    --test_file=$TASK/test.csv --text_fields=text --label_field=label \
    --output_dir=runs/extra_adapters_base/<task>

learning rate {1e-5, 3e-5, 1e-4, 3e-3} x epochs {20, 50, 100} x adapter size
{2, 4, 8, 16, 32, 64} = 72 trials per task, best on validation. The paper
gives no seed sweep here; add `seed=[...]` to the grid for restarts.

Expected (paper, table 2, test accuracy averaged over the 17 tasks): 73.3
with 1.14% trained parameters per task; not measured here.
"""

from bert_adapters.sweep import grid

LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-3]
EPOCHS = [20, 50, 100]


def get_config():
    return {
        "encoder": "bert_base_uncased",
        "tuning": "adapters",
        "adapter_init_scale": 1e-2,
        "max_seq_length": 128,
        "train_batch_size": 32,
        "warmup_proportion": 0.1,
    }


def get_sweep():
    return grid(learning_rate=LEARNING_RATES, num_train_epochs=EPOCHS,
                adapter_size=[2, 4, 8, 16, 32, 64])
