"""A smoke sweep on the embedded 6-layer encoder: minutes on a 2-core CPU.

  python run_classifier.py --hparams=hparams/minilm_smoke.py \
    --task_name=RTE --data_dir=$GLUE_DIR/RTE --output_dir=runs/minilm_smoke/RTE

learning rate {3e-4, 3e-3} x 2 seeds, adapters of size 64, 10 training steps
of 32 examples of 64 tokens: it checks the whole pipeline (sweep, resume,
selection, reports), it does not train a useful model. Test predictions are
off: on a CPU predicting RTE's 3000 test examples costs more than the
training (pass --do_predict to get submission files).

Measured (2-core CPU): see below once run.
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "minilm_l6",
        "tuning": "adapters",
        "adapter_size": 64,
        "max_seq_length": 64,
        "train_batch_size": 32,
        "max_train_steps": 10,
        "do_predict": False,
    }


def get_sweep():
    return grid(learning_rate=[3e-4, 3e-3], seed=[0, 1])
