"""A SQuAD smoke sweep on the embedded 6-layer encoder: minutes on a 2-core CPU.

Only SQuAD's dev file exists here: split it by article first (40 articles to
train on, the last 3 to evaluate), then run the sweep:

  python -m bert_adapters.data.squad_split --input=$SQUAD_DIR/dev-v1.1.json \
    --train_articles=40 --dev_articles=3 --output_dir=runs/squad_smoke_data
  python run_squad.py --hparams=hparams/squad_minilm_smoke.py \
    --train_file=runs/squad_smoke_data/train.json \
    --predict_file=runs/squad_smoke_data/dev.json --output_dir=runs/squad_smoke

learning rate {1e-3, 3e-3} with adapters of size 64, 60 steps of 16 windows
of 192 tokens (stride 64). It runs the whole procedure (features, training,
best-span search, official EM/F1, selection on dev F1, best.json) quickly;
60 steps teach the model only a little.

Measured: see the README's SQuAD section (per-trial wall time, EM/F1).
"""

from bert_adapters.sweep import grid

RUNNER = "run_squad.py"


def get_config():
    return {
        "encoder": "minilm_l6",
        "tuning": "adapters",
        "adapter_size": 64,
        "max_seq_length": 192,
        "doc_stride": 64,
        "train_batch_size": 16,
        "eval_batch_size": 64,
        "max_train_steps": 60,
        "group_by_length": True,
        "optimizer": "adamw",
    }


def get_sweep():
    return grid(learning_rate=[1e-3, 3e-3])
