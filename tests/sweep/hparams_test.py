"""hparams files: grid expansion, trial names, validation, precedence, the repo's sweeps."""

import importlib
import os

import pytest

from bert_adapters.sweep import grid, hparams_file, load_hparams, trial_name
from bert_adapters.sweep.runner import resolve_trials
from conftest import REPO_ROOT
from tiny_runs import write_hparams

HPARAMS_DIR = REPO_ROOT / "hparams"
# The paper's grids (DESIGN.md): trials per task.
PAPER_SIZES = {
    "glue_adapters_large.py": 3 * 2 * 3 * 5, "glue_adapters_large_64.py": 3 * 2 * 5,
    "glue_full_large.py": 4 * 5, "extra_adapters_base.py": 4 * 3 * 6,
    "extra_topk_base.py": 4 * 3 * 8, "extra_full_base.py": 4 * 3,
    "layer_norm_base.py": 3 * 2, "tradeoff_base.py": (10 + 12 + 1) * 3,
    "init_scale_base.py": 8, "squad_adapters.py": 4 * 3, "squad_full.py": 3 * 3,
    "minilm_smoke.py": 2 * 2,
    "squad_minilm_smoke.py": 2,
    # docs/results.md's studies: stage 1 (rate grids, seed 0) + stage 2 (seeds 1-2).
    "minilm_glue_rte.py": 3 * 3 + 2 * 3 + 2 * 2, "minilm_glue_stsb.py": 3 * 3 + 2 * 2,
    "minilm_glue_cola.py": 3 * 3 + 2 * 2 + 2 * 3,  # + 10 epochs at the picked rates
    "minilm_glue_mrpc.py": 12 * 3 + 12 * 2, "minilm_squad.py": 3 + 2 + 3 + 3 + 3 * 2,
    # Adapters in layers 1-6, 3-6, 4-6, 6-6, seeds 0-2.
    "minilm_adapter_layers.py": 4 * 3, "minilm_init_scale.py": 8,
}


def _files():
    """The hparams files (a shared base without `get_sweep()` is not one)."""
    return sorted(f for f in os.listdir(HPARAMS_DIR) if f.endswith(".py") and f != "__init__.py"
                  and "def get_sweep" in (HPARAMS_DIR / f).read_text())


def _runner(name):
    """The file's own RUNNER (a variant may take its base's)."""
    module = importlib.import_module(f"hparams.{name[:-len('.py')]}")
    return getattr(module, "RUNNER", "run_classifier.py")


# === grid and names ===
def test_grid_is_a_product_first_axis_slowest():
    assert grid(learning_rate=[3e-5, 3e-4], seed=range(2)) == [
        {"learning_rate": 3e-5, "seed": 0}, {"learning_rate": 3e-5, "seed": 1},
        {"learning_rate": 3e-4, "seed": 0}, {"learning_rate": 3e-4, "seed": 1}]
    assert grid() == [{}]
    with pytest.raises(ValueError, match="axis 'seed' has no values"):
        grid(learning_rate=[1e-3], seed=[])


def test_trial_names_are_deterministic_and_readable():
    assert trial_name({"learning_rate": 3e-5, "num_train_epochs": 3, "adapter_size": 64,
                       "seed": 0}) == "lr=3e-05,ep=3,size=64,seed=0"
    assert trial_name({"tuning": "top_k", "num_tuned_layers": 2}) == "tuning=top_k,k=2"
    assert trial_name({"adapter_init_scale": 1e-07}) == "init=1e-07"
    assert trial_name({"text_fields": ["a b", "c/d"]}) == "text_fields=a_b+c_d"
    assert trial_name({}) == "base"
    long_a = trial_name({"encoder": "x" * 300, "seed": 0})
    long_b = trial_name({"encoder": "x" * 300, "seed": 1})
    assert len(long_a) <= 160 and long_a != long_b


# === Validation ===
def test_unknown_field_is_named_with_its_file(tmp_path):
    path = write_hparams(tmp_path / "bad_config.py", {"learnin_rate": 1e-3}, "[{}]")
    with pytest.raises(ValueError, match=r"bad_config\.py: get_config\(\): unknown field "
                                         r"'learnin_rate'.*did you mean 'learning_rate'"):
        load_hparams(path)
    path = write_hparams(tmp_path / "bad_sweep.py", {}, "[{'seed': 0}, {'adaptor_size': 8}]")
    with pytest.raises(ValueError, match=r"bad_sweep\.py: get_sweep\(\)\[1\]: unknown field "
                                         r"'adaptor_size'"):
        load_hparams(path)


@pytest.mark.parametrize("config, sweep, message", [
    ({"learning_rate": "3e-4"}, "[{}]", r"learning_rate='3e-4' is a str, expected float"),
    ({}, "[{'seed': 1.5}]", r"get_sweep\(\)\[0\]: seed=1.5 is a float, expected int"),
    ({}, "[{'adapter_size': True}]", r"adapter_size=True is a bool"),
    ({}, "[{'seed': 0}, {'seed': 0}]", r"get_sweep\(\)\[1\] repeats get_sweep\(\)\[0\]"),
    ({}, "[{'num_gpus': 1}]", r"\['num_gpus'\] cannot vary between trials"),
    ({}, "[]", r"non-empty list"),
    ({}, "{'seed': 0}", r"non-empty list"),
])
def test_bad_values_are_named(tmp_path, config, sweep, message):
    path = write_hparams(tmp_path / "bad.py", config, sweep)
    with pytest.raises(ValueError, match=message):
        load_hparams(path)


def test_missing_functions_and_files(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text('"""Nothing."""\n')
    with pytest.raises(ValueError, match=r"empty\.py: an hparams file defines get_config\(\)"):
        load_hparams(str(path))
    with pytest.raises(FileNotFoundError, match="nope.py not found"):
        load_hparams(str(tmp_path / "nope.py"))


def test_squad_files_are_refused_by_the_classifier_runner():
    with pytest.raises(ValueError, match=r"squad_adapters\.py is a sweep for run_squad\.py"):
        load_hparams(str(HPARAMS_DIR / "squad_adapters.py"))
    assert load_hparams(str(HPARAMS_DIR / "squad_full.py"), runner="run_squad.py").config[
        "tuning"] == "full"


# === Precedence ===
def test_precedence_defaults_config_flags_sweep(tmp_path):
    path = write_hparams(tmp_path / "p.py", {"learning_rate": 1e-3, "max_seq_length": 64,
                                             "warmup_proportion": 0.2},
                         "grid(seed=[0, 1])")
    hp = load_hparams(path)
    base, trials = resolve_trials(
        hp, defaults={"task_name": "RTE", "max_seq_length": 128, "train_batch_size": 16,
                      "do_train": False},
        explicit={"task_name": "RTE", "warmup_proportion": 0.0})
    assert [t.name for t in trials] == ["seed=0", "seed=1"]
    config = trials[1].config
    assert config.seed == 1                    # the sweep
    assert config.warmup_proportion == 0.0     # an explicit flag beats the file
    assert config.max_seq_length == 64         # the file beats the flags' defaults
    assert config.learning_rate == 1e-3
    assert config.train_batch_size == 16       # flags' defaults beat RunConfig's
    assert config.do_train and config.do_eval and config.do_predict  # sweep defaults
    assert base["seed"] == 42 and trials[0].hparams == {"seed": 0}


def test_an_explicit_flag_on_a_swept_field_is_an_error(tmp_path):
    hp = load_hparams(write_hparams(tmp_path / "p.py", {}, "grid(learning_rate=[1e-3, 1e-2])"))
    with pytest.raises(ValueError, match=r"--learning_rate=0.5 conflicts with .*p\.py, which "
                                         r"sweeps learning_rate over 0.001, 0.01"):
        resolve_trials(hp, explicit={"task_name": "RTE", "learning_rate": 0.5})


def test_trials_are_checked_before_anything_runs(tmp_path):
    hp = load_hparams(write_hparams(tmp_path / "p.py", {"tuning": "top_k"},
                                    "grid(num_tuned_layers=[1, 0])"))
    with pytest.raises(ValueError, match=r"get_sweep\(\)\[1\] \(k=0\): tuning='top_k' needs "
                                         r"num_tuned_layers"):
        resolve_trials(hp, explicit={"task_name": "RTE"})
    hp = load_hparams(write_hparams(tmp_path / "s.py", {}, "grid(adapter_layers=['2-6', '5-2'])"))
    with pytest.raises(ValueError, match=r"get_sweep\(\)\[1\] \(layers=5-2\): "
                                         r"--adapter_layers=5-2: the first layer 5 is above"):
        resolve_trials(hp, explicit={"task_name": "RTE"})
    hp = load_hparams(write_hparams(tmp_path / "t.py", {"tuning": "full"},
                                    "grid(adapter_layers=['2-6'])"))
    with pytest.raises(ValueError, match=r"\(layers=2-6\): --adapter_layers places adapters"):
        resolve_trials(hp, explicit={"task_name": "RTE"})
    hp = load_hparams(write_hparams(tmp_path / "q.py", {"do_eval": False}, "[{}]"))
    with pytest.raises(ValueError, match="a sweep trains and evaluates every trial"):
        resolve_trials(hp, explicit={"task_name": "RTE"})


# === The repository's hparams files ===
def test_every_paper_sweep_is_here():
    assert set(_files()) == set(PAPER_SIZES)


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_hparams_file_loads_and_resolves(name):
    runner = _runner(name)
    hp = load_hparams(str(HPARAMS_DIR / name), runner=runner)
    assert len(hp.sweep) == PAPER_SIZES[name]
    assert f"--hparams=hparams/{name}" in hp.doc  # The docstring gives the command.
    assert "xpected" in hp.doc or "easured" in hp.doc
    # A SQuAD sweep has no task to name: its data are --train_file/--predict_file.
    explicit = {} if runner == "run_squad.py" else {"task_name": "RTE"}
    _, trials = resolve_trials(hp, explicit=explicit)
    assert len({t.name for t in trials}) == len(trials)


def test_paper_grids():
    hp = load_hparams(str(HPARAMS_DIR / "glue_adapters_large.py"))
    assert {t["learning_rate"] for t in hp.sweep} == {3e-5, 3e-4, 3e-3}
    assert {t["num_train_epochs"] for t in hp.sweep} == {3, 20}
    assert {t["adapter_size"] for t in hp.sweep} == {8, 64, 256}
    assert hp.config["encoder"] == "bert_large_uncased"
    fixed = load_hparams(str(HPARAMS_DIR / "glue_adapters_large_64.py"))
    assert fixed.config["adapter_size"] == 64 and "adapter_size" not in fixed.swept_fields
    tradeoff = load_hparams(str(HPARAMS_DIR / "tradeoff_base.py"))
    sizes = {t["adapter_size"] for t in tradeoff.sweep if t["tuning"] == "adapters"}
    assert sizes == {2 ** i for i in range(10)}
    assert {t["num_tuned_layers"] for t in tradeoff.sweep if t["tuning"] == "top_k"} == set(
        range(1, 13))
    init = load_hparams(str(HPARAMS_DIR / "init_scale_base.py"))
    assert [t["adapter_init_scale"] for t in init.sweep] == pytest.approx(
        [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    topk = load_hparams(str(HPARAMS_DIR / "extra_topk_base.py"))
    assert {t["num_tuned_layers"] for t in topk.sweep} == {1, 2, 3, 5, 7, 9, 11, 12}
    assert hparams_file.load_hparams(str(HPARAMS_DIR / "minilm_smoke.py")).config[
        "encoder"] == "minilm_l6"
