"""A small parameter/performance trade-off on the embedded 6-layer encoder (figure 4, in small).

  python run_classifier.py --hparams=hparams/tradeoff_minilm.py --task_name=MRPC \
    --data_dir=$GLUE_DIR/MRPC --output_dir=runs/tradeoff_minilm/MRPC
  python -m bert_adapters.analysis tradeoff --runs_dir runs/tradeoff_minilm/MRPC \
    --output_dir runs/tradeoff_minilm/plots --metric accuracy

One epoch of MRPC (114 steps of 32), one learning rate per family, one seed:
adapters of size 2, 8, 64, 256 (lr 1e-3), fine-tuning the top k = 1, 3, 6
layers (lr 1e-4), LayerNorm only (lr 3e-3) and full fine-tuning (lr 1e-4):
9 trials. The paper's figure 4 sweeps three learning rates and three seeds
per point on BERT-base; this is what fits in about half an hour of a 2-core
CPU. Test predictions are off.

Measured (2-core AMD EPYC, fp32, 2026-11-30, with other jobs keeping the load
at 7-14): 4,236 s wall for the 9 trials (287-633 s each), about 26 CPU
minutes. Dev accuracy (majority class 68.4): adapters m=2 68.4, m=8 69.9,
m=64 68.4, m=256 68.4; top k=1 70.6, k=3 71.6, k=6 70.3; LayerNorm 68.4;
full 70.3. One epoch is too short on this base: no method gets more than
three points above the majority class (one dev example is 0.25 points), so
this budget cannot separate the methods; `make demo` needs 4 epochs for
80.4. README, "Analysis: the paper's figures", has the figure.
"""

from bert_adapters.sweep import grid


def get_config():
    return {
        "encoder": "minilm_l6",
        "num_train_epochs": 1,
        "max_seq_length": 128,
        "train_batch_size": 32,
        "eval_batch_size": 64,
        "warmup_proportion": 0.1,
        "group_by_length": True,
        "do_predict": False,
    }


def get_sweep():
    adapters = grid(tuning=["adapters"], adapter_size=[2, 8, 64, 256], learning_rate=[1e-3])
    top_k = grid(tuning=["top_k"], num_tuned_layers=[1, 3, 6], learning_rate=[1e-4])
    layer_norm = grid(tuning=["layer_norm"], learning_rate=[3e-3])
    full = grid(tuning=["full"], learning_rate=[1e-4])
    return adapters + top_k + layer_norm + full
