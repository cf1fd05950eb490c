"""The absl flags of `run_classifier.py` and `run_squad.py`, defined once.

Names follow BERT's estimator-era scripts (`--task_name`, `--data_dir`,
`--init_checkpoint`, `--doc_stride`, ...) plus the paper's and this
package's settings. Every flag of google-research/bert's and adapter-bert's
`run_classifier.py` and `run_squad.py` is accepted with its meaning, so their
job scripts run unchanged:

  --use_tpu --tpu_name --master      -> --distribution_strategy=tpu --tpu=NAME
  --tpu_zone --gcp_project           where the Cloud TPU is
  --num_tpu_cores                    checked against the TPU's cores
  --iterations_per_loop              steps per compiled call
  --do_lower_case                    must agree with the vocabulary's casing
  --predict_batch_size               the batch size of prediction
  --init_checkpoint=<a trained run>  as --task_dir (BERT's "trained classifier")
  --version_2_with_negative          refused: SQuAD v2.0 is not reproduced here
  --verbose_logging, --null_score_diff_threshold (run_squad.py)

`main` maps those onto the package's own flags, then runs one job (or a sweep
with --hparams). Every user error ends in one line on stderr and exit code 2.
"""

import dataclasses
import os
import sys

from absl import flags, logging

from bert_adapters.cli import terminal


def define_common_flags(max_seq_length=128):
    """Flags shared by every runner: base encoder, tuning, optimisation, hardware."""
    # Required.
    flags.DEFINE_string("output_dir", None, "Where checkpoints, results, submission files and "
                        "the task artifact are written (local or gs://).")
    # Base encoder.
    flags.DEFINE_string("encoder", None, "Base encoder: an alias (minilm_l6, bert_base_uncased, "
                        "...), a TF Hub handle or SavedModel dir, a TF1 BERT checkpoint dir, a "
                        "keras-hub preset or an HF BERT dir.")
    flags.DEFINE_string("init_checkpoint", None, "Original BERT: the TF1 checkpoint prefix; or, "
                        "as BERT's $TRAINED_CLASSIFIER, an earlier run's output dir (then "
                        "read as --task_dir).")
    flags.DEFINE_string("bert_config_file", None, "Original BERT: bert_config.json.")
    flags.DEFINE_string("vocab_file", None, "Original BERT: vocab.txt.")
    flags.DEFINE_bool("do_lower_case", None, "Original BERT: lower-case the input. Default: "
                      "the vocabulary's own casing; a contradicting value stops the run.")
    flags.DEFINE_string("task_dir", None, "Output dir (or task_artifact dir) of an earlier run: "
                        "reload its trained weights onto the base for --do_eval/--do_predict.")
    # Tuning.
    flags.DEFINE_enum("tuning", "adapters", ["adapters", "full", "top_k", "layer_norm"],
                      "What is trained: adapters (+LayerNorms+head), full fine-tuning, the top "
                      "k layers, or LayerNorms only.")
    flags.DEFINE_integer("num_tuned_layers", None, "k for --tuning=top_k.")
    flags.DEFINE_integer("adapter_size", None, "Adapter bottleneck size m (default 64 with "
                         "--tuning=adapters, as adapter-bert).")
    flags.DEFINE_float("adapter_init_scale", 1e-2, "Stddev of the adapters' truncated-normal "
                       "init (paper 1e-2; the authors' code 1e-3).")
    flags.DEFINE_string("adapter_layers", None, "With --tuning=adapters: adapters (and trained "
                        "LayerNorms) only in layers i..j, written i-j (1-based, inclusive; "
                        "e.g. 3-6). Default: every layer. The layers below i are frozen and "
                        "keep no activations for the backward pass.")
    flags.register_validator("adapter_layers", _check_layer_span)
    # Optimisation.
    flags.DEFINE_integer("max_seq_length", max_seq_length, "Maximum WordPiece tokens per "
                         "example, [CLS] and [SEP]s included; longer inputs are truncated.")
    flags.DEFINE_integer("train_batch_size", 32, "Global training batch size.")
    flags.DEFINE_integer("eval_batch_size", 32, "Global batch size for evaluation (and "
                         "prediction, unless --predict_batch_size).")
    flags.DEFINE_integer("predict_batch_size", None, "Original BERT: global batch size for "
                         "prediction. Evaluation and prediction share one pass over the "
                         "model, so with --do_eval it is --eval_batch_size.")
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
    flags.DEFINE_bool("pack_sequences", False, "Pack several short examples (sentences, SQuAD "
                      "windows) into each row (block-diagonal attention; same loss per "
                      "example, except that a packed SQuAD window's softmax covers its own "
                      "tokens, not BERT's padding positions; not on TPUs).")
    flags.DEFINE_bool("fast_dropout", False, "Dropout masks from 16 random bits per element: "
                      "half the random-number work of a training step's masks; the rate is "
                      "rounded to a multiple of 2^-16 and the masks differ from the default's.")
    flags.DEFINE_integer("save_checkpoints_steps", 500, "Checkpoint every N steps (resume).")
    flags.DEFINE_integer("iterations_per_loop", 1, "Training steps run inside one compiled "
                         "call (BERT's TPU loop; fewer round trips on every device).")
    # What to do.
    flags.DEFINE_bool("do_train", False, "Train.")
    flags.DEFINE_bool("do_eval", False, "Evaluate on the dev split(s).")
    flags.DEFINE_bool("do_predict", False, "Predict: the test split(s) into GLUE submission "
                      "files and test_results.tsv, or --predict_file into predictions.json "
                      "(SQuAD).")
    # Hardware.
    flags.DEFINE_enum("distribution_strategy", "one_device",
                      ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                      "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (with "
                        "--distribution_strategy=tpu).")
    flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible).")
    flags.DEFINE_string("cpu_replicas", "auto", "On a machine without GPUs: train this many "
                        "replicas on the CPU, each on its share of every batch and its own "
                        "core(s) (mirrored; the same dropout masks as one device). auto: one "
                        "per core on CPUs of 2 to 4 cores for adapters or LayerNorm tuning when "
                        "the batch sizes split evenly, else 1.")
    flags.DEFINE_enum("mixed_precision", None, ["bf16", "fp16"], "Mixed precision compute.")
    flags.DEFINE_enum("bf16_matmuls", "auto", ["auto", "bfloat16", "float32"], "With "
                      "--mixed_precision=bf16: run the dense layers' matmuls in bfloat16 "
                      "kernels or cast to float32 kernels (the same products and float32 sums, "
                      "in another order); auto: float32 kernels on Intel CPUs with AVX-512 BF16 "
                      "and no AMX, where they are faster, bfloat16 kernels elsewhere.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the forward and backward pass.")
    # Original BERT's TPU flags.
    flags.DEFINE_bool("use_tpu", False, "Original BERT: train on a Cloud TPU (the same as "
                      "--distribution_strategy=tpu).")
    flags.DEFINE_string("tpu_name", None, "Original BERT: the Cloud TPU's name or "
                        "grpc://address (the same as --tpu).")
    flags.DEFINE_string("tpu_zone", None, "Original BERT: the Cloud TPU's GCE zone (default: "
                        "from the metadata server).")
    flags.DEFINE_string("gcp_project", None, "Original BERT: the Cloud TPU's GCP project "
                        "(default: from the metadata server).")
    flags.DEFINE_string("master", None, "Original BERT: TensorFlow master URL of the TPU, "
                        "used with --use_tpu when --tpu_name is not given.")
    flags.DEFINE_integer("num_tpu_cores", None, "Original BERT: TPU cores to use. The run "
                         "replicates over every core of the TPU it is given and stops if "
                         "their number differs.")
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
    flags.DEFINE_bool("cls_only_top_layer", True, "Compute the top layer at [CLS] only, the "
                      "one position the classifier reads, with the full layer's dropout masks "
                      "there: the same training step up to float rounding, less work. "
                      "--nocls_only_top_layer computes every position.")


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
    # Original BERT's SQuAD flags.
    flags.DEFINE_bool("verbose_logging", False, "Original BERT: print every data-processing "
                      "message (debug-level logs).")
    flags.DEFINE_bool("version_2_with_negative", False, "Original BERT: SQuAD v2.0. Not "
                      "supported: this project reproduces the paper's SQuAD v1.1.")
    flags.DEFINE_float("null_score_diff_threshold", 0.0, "Original BERT: SQuAD v2.0's "
                       "no-answer threshold; no effect on v1.1.")


def _check_layer_span(value):
    """absl validator of --adapter_layers: its form (the encoder checks its layers)."""
    from bert_adapters.model.layer_span import parse_layer_span

    try:
        parse_layer_span(value)
    except ValueError as err:  # absl names the flag and value itself: the reason follows.
        raise flags.ValidationError(str(err).split(": ", 1)[-1]) from None
    return True


def parse_flags(argv):
    """absl's flag parsing for `app.run(main, flags_parser=parse_flags)`.

    A bad flag is one line and exit code 2, not absl's `FATAL` and exit 1.
    """
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        terminal.fail(os.path.basename(argv[0]), f"{err} (--help lists the flags)")


def run_config_from_flags(values, cls=None, **extra):
    """A `cls` config (default ClassifierConfig) from parsed flag values.

    Fields `cls` lacks are ignored; list flags become tuples. Original BERT's
    flags are read through `apply_bert_flags` first (`main` does it).
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


def _set(values, name, value):
    """Sets a flag as if it had been given on the command line."""
    setattr(values, name, value)
    values[name].present = max(values[name].present, 1)


def _given(values, name):
    return name in values and values[name].present


def apply_bert_flags(values):
    """Maps original BERT's flags onto this package's own flags, in place.

    Sweeps and single runs read the same flags, so the mapping serves both.

    Raises:
        ValueError: a BERT flag that contradicts one of ours, or SQuAD v2.0.
    """
    if _given(values, "version_2_with_negative") and values.version_2_with_negative:
        raise ValueError("--version_2_with_negative: SQuAD v2.0 is not supported; this project "
                         "reproduces the paper's SQuAD v1.1 (pass v1.1 files, or leave the "
                         "flag out)")
    if "null_score_diff_threshold" in values and values.null_score_diff_threshold:
        logging.warning("--null_score_diff_threshold is SQuAD v2.0's: it has no effect on v1.1")
    if "verbose_logging" in values and values.verbose_logging:
        logging.set_verbosity(logging.DEBUG)
    if values.use_tpu:
        if _given(values, "distribution_strategy") and values.distribution_strategy != "tpu":
            raise ValueError(f"--use_tpu contradicts --distribution_strategy="
                             f"{values.distribution_strategy}")
        _set(values, "distribution_strategy", "tpu")
        address = values.tpu_name or values.master
        if address and values.tpu and values.tpu != address:
            raise ValueError(f"--tpu={values.tpu} contradicts --tpu_name/--master={address}")
        if address:
            _set(values, "tpu", address)
    else:
        unused = [f"--{name}" for name in ("tpu_name", "master", "num_tpu_cores")
                  if values[name].value is not None]
        if unused:
            logging.warning("%s: used with --use_tpu only (as in BERT); ignored",
                            ", ".join(unused))
    if values.predict_batch_size is not None:
        if values.predict_batch_size < 1:
            raise ValueError(f"--predict_batch_size must be positive, got "
                             f"{values.predict_batch_size}")
        if not values.do_eval and not _given(values, "eval_batch_size"):
            _set(values, "eval_batch_size", values.predict_batch_size)
    run_dir = trained_run_dir(values.init_checkpoint)
    if run_dir is not None:
        # BERT's "prediction from classifier": --init_checkpoint names the
        # fine-tuned model; here that is an earlier run's task artifact.
        if values.task_dir and values.task_dir != run_dir:
            raise ValueError(f"--init_checkpoint={values.init_checkpoint} is a trained run, "
                             f"and so is --task_dir={values.task_dir}: give one")
        _set(values, "task_dir", run_dir)
        _set(values, "init_checkpoint", None)


def trained_run_dir(path):
    """The run (or task artifact) directory `path` names, else None.

    `path` may be the run's output directory, its `task_artifact/`, or a file
    inside either (e.g. `checkpoints/ckpt-343`), as BERT users point
    `--init_checkpoint` at their fine-tuned model.
    """
    if not path:
        return None
    from bert_adapters import io_utils
    from bert_adapters.checkpoints import artifact

    path = str(path).rstrip("/")
    candidates = [path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))]
    for candidate in candidates:
        if not candidate:
            continue
        for folder in (candidate, io_utils.join(candidate, "task_artifact")):
            if io_utils.exists(io_utils.join(folder, artifact.CONFIG_FILE)):
                return candidate
    return None


def _check_output_dir(path):
    from bert_adapters import io_utils

    if io_utils.exists(path) and not io_utils.isdir(path):
        raise ValueError(f"--output_dir {path} is an existing file, not a directory")


def _user_errors():
    """The exception types that mean bad input: reported in one line, no traceback."""
    import tensorflow as tf

    return (ValueError, OSError, tf.errors.NotFoundError, tf.errors.PermissionDeniedError)


def _message(err):
    import tensorflow as tf

    if isinstance(err, tf.errors.OpError):
        return err.message
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def main(values, runner, required=("output_dir",)):
    """A runner's whole main: a sweep with --hparams, else one `trainer.run`.

    Bad input ends with one readable line on stderr and exit code 2; an
    interrupted job says how to resume.
    """
    terminal.setup_cli(values.verbosity)
    errors = _user_errors()
    try:
        for name in required:
            if not values[name].value:
                raise ValueError(f"--{name} is required (--help lists the flags)")
        apply_bert_flags(values)
        _check_output_dir(values.output_dir)
        if values.hparams:
            from bert_adapters import sweep
            sweep.run_sweep_from_flags(values, runner)
            return
        from bert_adapters.sweep.hparams_file import config_class
        from bert_adapters.training import trainer
        config = run_config_from_flags(values, config_class(runner))
        logging.info("%s", describe(config, values.output_dir))
        trainer.run(config, values.output_dir, strategy=_tpu_strategy(values, config))
        logging.info("Outputs in %s: %s", values.output_dir, _listing(values.output_dir))
    except errors as err:
        terminal.fail(runner, _message(err))
    except KeyboardInterrupt:
        print(f"{runner}: interrupted; the same command resumes from the last checkpoint in "
              f"{values.output_dir}", file=sys.stderr)
        sys.exit(130)


def describe(config, output_dir):
    """One line of the settings a user checks before a long run."""
    what = "+".join(k for k in ("do_train", "do_eval", "do_predict") if getattr(config, k))
    task = getattr(config, "task_name", None) or "SQuAD v1.1"
    tuning = config.tuning + (f" (size {config.adapter_size})" if config.tuning == "adapters"
                              else f" (k={config.num_tuned_layers})" if config.tuning == "top_k"
                              else "")
    base = config.encoder or config.init_checkpoint or f"the base of {config.task_dir}"
    from bert_adapters.training import distribution

    replicas = distribution.cpu_replicas_for(config)
    hardware = f"{replicas} CPU replicas" if replicas > 1 else config.distribution_strategy
    return (f"{task}: {what.replace('do_', '')} | {tuning} on {base} | lr {config.learning_rate}, "
            f"{config.num_train_epochs:g} epochs, batch {config.train_batch_size}, length "
            f"{config.max_seq_length}, {hardware} | -> {output_dir}")


def _listing(directory):
    from bert_adapters import io_utils

    try:
        names = sorted(n.rstrip("/") for n in io_utils.listdir(directory))
    except Exception:  # pylint: disable=broad-except  (a listing is only a courtesy)
        return "(could not list it)"
    return ", ".join(n + ("/" if io_utils.isdir(io_utils.join(directory, n)) else "")
                     for n in names)


def _tpu_strategy(values, config):
    """With --use_tpu --num_tpu_cores=N: the TPU strategy, checked to have N cores."""
    if not (values.use_tpu and values.num_tpu_cores is not None):
        return None
    from bert_adapters.training import distribution

    strategy = distribution.strategy_from_config(config)
    if strategy.num_replicas_in_sync != values.num_tpu_cores:
        raise ValueError(f"--num_tpu_cores={values.num_tpu_cores}, but the TPU {config.tpu!r} "
                         f"has {strategy.num_replicas_in_sync} cores: the run uses all of them")
    return strategy
