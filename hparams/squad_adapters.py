"""SQuAD v1.1 with adapters on BERT-large (paper, section 3.5, figure 5).

  python run_squad.py --hparams=hparams/squad_adapters.py \
    --train_file=$SQUAD_DIR/train-v1.1.json --predict_file=$SQUAD_DIR/dev-v1.1.json \
    --output_dir=runs/squad_adapters

For `run_squad.py` (run_classifier.py refuses this file); without the two
files it reads TFDS squad/v1.1. learning rate {3e-5, 1e-4, 3e-4, 1e-3} x epochs {3, 10, 20} = 12
trials at adapter size 64 (the paper also reports size 2: set
--adapter_size=2 and a new --output_dir).

Expected (paper): validation F1 90.4 at size 64, 89.9 at size 2; not
measured here.
"""

from bert_adapters.sweep import grid

RUNNER = "run_squad.py"


def get_config():
    return {
        "encoder": "bert_large_uncased",
        "tuning": "adapters",
        "adapter_size": 64,
        "adapter_init_scale": 1e-2,
        "max_seq_length": 384,
        "train_batch_size": 32,
        "warmup_proportion": 0.1,
    }


def get_sweep():
    return grid(learning_rate=[3e-5, 1e-4, 3e-4, 1e-3], num_train_epochs=[3, 10, 20])
