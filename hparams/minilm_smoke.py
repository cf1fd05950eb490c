"""A smoke sweep on the embedded 6-layer encoder: minutes on a 2-core CPU.

  python run_classifier.py --hparams=hparams/minilm_smoke.py \
    --task_name=RTE --data_dir=$GLUE_DIR/RTE --output_dir=runs/minilm_smoke/RTE

learning rate {3e-4, 3e-3} x 2 seeds, adapters of size 64, 10 training steps
of 32 examples of 64 tokens: it checks the whole pipeline (sweep, resume,
selection, reports), it does not train a useful model. Test predictions are
off: on a CPU predicting RTE's 3000 test examples costs more than the
training (pass --do_predict to get submission files).

Measured on a 2-core CPU, no GPU (one process per task, machine otherwise idle):
  RTE  (accuracy on dev, 277): lr 3e-4: 0.4729 / 0.4585 (seeds 0 / 1),
       lr 3e-3: 0.5271 / 0.5271 (all not_entailment, the majority class);
       best lr=0.003,seed=0, winning the tie on eval_loss (0.6920 vs 0.6938).
       Whole command 177 s; 39-51 s per trial (10 steps: 24-26 s).
  MRPC (F1 on dev, 408): 0.8122 for all four trials (all "equivalent", the
       majority; accuracy 0.6838); best lr=0.003,seed=1 on eval_loss (0.6225).
       Whole command 165 s; 38-41 s per trial.
Ten steps move the loss, not the predictions: the spread across seeds is
0.010 (RTE, lr 3e-4) and 0 elsewhere. Reruns give the same numbers.
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
