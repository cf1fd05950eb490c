"""A smoke sweep on the embedded 6-layer encoder: minutes on a 2-core CPU.

  python run_classifier.py --hparams=hparams/minilm_smoke.py \
    --task_name=MRPC --data_dir=$GLUE_DIR/MRPC --output_dir=runs/minilm_smoke/MRPC

learning rate {3e-4, 1e-3} x 2 seeds, adapters of size 64, 40 training steps
of 32 examples (about a third of an epoch of MRPC), batches grouped by
length. It runs the whole selection procedure (sweep, resume, selection,
summary, best.json) quickly; it does not train long enough to learn the
task. Test predictions are off (pass --do_predict to get submission files).

Measured (2-core AMD EPYC, fp32, 2026-11-25), about 70 s per trial (model
build, 40 steps, dev evaluation), 4.5-5 min per task:
  - MRPC: every trial still predicts the majority class (F1 81.2, accuracy
    68.4, the same for both seeds); the best trial, lr=3e-4 seed=0, wins on
    the eval-loss tie-break (0.620 vs 0.622-0.626).
  - RTE: accuracy 51.6 / 52.7 (lr 3e-4, seeds 0 / 1) and 47.3 / 47.3
    (lr 1e-3): chance level (majority class 52.7); best lr=3e-4 seed=1.
For a model that has learned MRPC, see `make demo` (458 steps: F1 86.2).
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
