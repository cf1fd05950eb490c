"""The absl flags of `run_classifier.py` and `run_squad.py`, defined once.

Names follow BERT's estimator-era scripts (`--task_name`, `--data_dir`,
`--init_checkpoint`, `--doc_stride`, ...) plus the paper's and this
package's settings. The shared flags mirror `training.RunConfig`; each
runner adds the fields of its own config class.
"""

import dataclasses
import sys

from absl import flags


def define_common_flags(max_seq_length=128):
    """Flags shared by every runner: base encoder, tuning, optimisation, hardware."""
    # Required.
    flags.DEFINE_string("output_dir", None, "Where checkpoints, results, submission files and "
                        "the task artifact are written (local or gs://).")
    # Base encoder.
    flags.DEFINE_string("encoder", None, "Base encoder: an alias (minilm_l6, bert_base_uncased, "
                        "...), a TF Hub handle or SavedModel dir, a TF1 BERT checkpoint dir, a "
                        "keras-hub preset or an HF BERT dir.")
    flags.DEFINE_string("init_checkpoint", None, "Original BERT: the TF1 checkpoint prefix.")
    flags.DEFINE_string("bert_config_file", None, "Original BERT: bert_config.json.")
    flags.DEFINE_string("vocab_file", None, "Original BERT: vocab.txt.")
    flags.DEFINE_string("task_dir", None, "Output dir (or task_artifact dir) of an earlier run: "
                        "reload its trained weights onto the base for --do_eval/--do_predict.")
    # Tuning.
    flags.DEFINE_enum("tuning", "adapters", ["adapters", "full", "top_k", "layer_norm"],
                      "What is trained: adapters (+LayerNorms+head), full fine-tuning, the top "
                      "k layers, or LayerNorms only.")
    flags.DEFINE_integer("num_tuned_layers", None, "k for --tuning=top_k.")
    flags.DEFINE_integer("adapter_size", None, "Adapter bottleneck size m (default 64 with "
                         "--tuning=adapters).")
    flags.DEFINE_float("adapter_init_scale", 1e-2, "Stddev of the adapters' truncated-normal "
                       "init (paper 1e-2; the authors' code 1e-3).")
    # Optimisation.
    flags.DEFINE_integer("max_seq_length", max_seq_length, "Maximum WordPiece tokens per example, [CLS] "
                         "and [SEP]s included; longer inputs are truncated.")
    flags.DEFINE_integer("train_batch_size", 32, "Global training batch size.")
    flags.DEFINE_integer("eval_batch_size", 32, "Global batch size for evaluation/prediction.")
    flags.DEFINE_float("learning_rate", 3e-4, "Peak learning rate.")
    flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps of linear warm-up.")
    flags.DEFINE_enum("optimizer", "bert_adam", ["bert_adam", "adamw"], "bert_adam: BERT's "
                      "AdamWeightDecay (no bias correction); adamw: Keras AdamW.")
    flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not on LayerNorm/biases).")
    flags.DEFINE_integer("seed", 42, "Seed of initialisation, dropout and data order.")
    flags.DEFINE_integer("max_train_steps", None, "Cap on training steps (smoke tests).")
    flags.DEFINE_bool("group_by_length", False, "Batch examples of similar length (less "
                      "padding; each epoch still sees every example once).")
    flags.DEFINE_integer("save_checkpoints_steps", 500, "Checkpoint every N steps (resume).")
    # What to do.
    flags.DEFINE_bool("do_train", False, "Train.")
    flags.DEFINE_bool("do_eval", False, "Evaluate on the dev split(s).")
    flags.DEFINE_bool("do_predict", False, "Predict: the test split(s) into GLUE submission "
                      "files, or --predict_file into predictions.json (SQuAD).")
    # Hardware.
    flags.DEFINE_enum("distribution_strategy", "one_device",
                      ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                      "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name or address (with --distribution_strategy=tpu).")
    flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible).")
    flags.DEFINE_enum("mixed_precision", None, ["bf16", "fp16"], "Mixed precision compute.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the forward and backward pass.")
    # Sweeps.
    flags.DEFINE_string("hparams", None, "An hparams/*.py file: run its sweep, one trial per "
                        "sub-directory of --output_dir, and pick the best on validation.")
    flags.DEFINE_bool("overwrite", False, "Replace a different sweep recorded in --output_dir "
                      "(removed or changed trials are deleted, identical ones kept).")


def define_classifier_flags():
    define_common_flags()
    flags.DEFINE_string("task_name", None, "GLUE task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, "
                        "QNLI, RTE, WNLI; case-insensitive) or 'custom'.")
    flags.DEFINE_string("data_dir", None, "The task's GLUE folder ($GLUE_DIR/MRPC) or the GLUE "
                        "root. Without it, GLUE is read from TFDS.")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for glue/*.")
    flags.DEFINE_string("train_file", None, "Custom task: training file (CSV, TSV or JSONL).")
    flags.DEFINE_string("dev_file", None, "Custom task: dev file.")
    flags.DEFINE_string("test_file", None, "Custom task: test file.")
    flags.DEFINE_list("text_fields", None, "Custom task: one or two text columns, "
                      "comma-separated.")
    flags.DEFINE_string("label_field", "label", "Custom task: the label column.")
    flags.DEFINE_list("labels", None, "Custom task: the label set (default: from train_file, "
                      "sorted).")


def define_squad_flags():
    define_common_flags(max_seq_length=384)
    flags.DEFINE_string("train_file", None, "SQuAD v1.1 JSON for training (e.g. "
                        "train-v1.1.json). Without it, TFDS squad/v1.1 train.")
    flags.DEFINE_string("predict_file", None, "SQuAD v1.1 JSON to predict (and evaluate, "
                        "when it has answers), e.g. dev-v1.1.json. Without it, TFDS "
                        "squad/v1.1 validation.")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for squad/v1.1.")
    flags.DEFINE_integer("doc_stride", 128, "Tokens between the starts of two windows of a "
                         "long context.")
    flags.DEFINE_integer("max_query_length", 64, "Questions are cut to this many tokens.")
    flags.DEFINE_integer("n_best_size", 20, "Candidate starts and ends per window "
                         "(nbest_predictions.json).")
    flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in tokens.")


def run_config_from_flags(values, cls=None, **extra):
    """A `cls` config (default ClassifierConfig) from parsed flag values.

    Fields `cls` lacks are ignored; list flags become tuples.
    """
    if cls is None:
        from bert_adapters.tasks.classification import ClassifierConfig as cls
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {name: values[name].value for name in fields if name in values}
    for key in cls.TUPLE_FIELDS:
        if kwargs.get(key) is not None:
            kwargs[key] = tuple(kwargs[key])
    kwargs.update(extra)
    return cls(**kwargs)


def main(values, runner, required=("output_dir",)):
    """A runner's whole main: a sweep with --hparams, else one `trainer.run`.

    Bad input ends with one readable line on stderr and exit code 2.
    """
    from absl import app
    for name in required:
        if not values[name].value:
            raise app.UsageError(f"--{name} is required")
    try:
        if values.hparams:
            from bert_adapters import sweep
            sweep.run_sweep_from_flags(values, runner)
            return
        from bert_adapters.sweep.hparams_file import config_class
        from bert_adapters.training import trainer
        trainer.run(run_config_from_flags(values, config_class(runner)), values.output_dir)
    except (ValueError, FileNotFoundError) as err:
        # Bad input: one readable line and a non-zero exit, no traceback.
        print(f"{runner}: error: {err}", file=sys.stderr)
        sys.exit(2)
