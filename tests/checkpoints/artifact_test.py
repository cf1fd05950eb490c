"""Task artifacts on their own: what is saved, what is reloaded, what is refused."""

import json
import os

import numpy as np
import pytest
import safetensors.numpy

from bert_adapters.checkpoints import artifact
from bert_adapters.model import heads, trainable
from bert_adapters.model.bert_encoder import BertEncoder
from bert_adapters.checkpoints.fingerprint import base_fingerprint
from conftest import random_canonical_weights, random_inputs, tiny_config


def _task_model(seed=0, adapter_size=2):
    encoder = BertEncoder(tiny_config(), adapter_size=adapter_size)
    encoder.set_canonical_weights(random_canonical_weights(encoder, seed=seed))
    trainable.apply_tuning(encoder, "adapters")
    model = heads.build_classifier_model(encoder, 2, head_dropout=0.0)
    return model, encoder


def _task_config(**extra):
    return {"kind": "classification", "task": "RTE", "num_outputs": 2, "head_dropout": 0.0,
            "label_names": ["entailment", "not_entailment"], "tuning": "adapters",
            "num_tuned_layers": None, "adapter_size": 2, "adapter_init_scale": 1e-2,
            "encoder_source": "test", "global_step": 7, **extra}


def _train_a_little(model, seed=1):
    """Changes every trainable weight, as training would."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(rng.standard_normal(tuple(v.shape)).astype("float32") * 0.1)


@pytest.fixture
def saved(tmp_path):
    model, encoder = _task_model()
    fingerprint = base_fingerprint(encoder)  # Before training, as the trainer takes it.
    _train_a_little(model)
    folder = str(tmp_path / "run" / "task_artifact")
    config = artifact.save_artifact(folder, model, encoder, _task_config(), fingerprint)
    return {"model": model, "encoder": encoder, "folder": folder, "config": config,
            "run": str(tmp_path / "run")}


def test_only_the_trained_weights_are_saved(saved):
    assert sorted(os.listdir(saved["folder"])) == ["task_config.json", "weights.safetensors"]
    with open(os.path.join(saved["folder"], "weights.safetensors"), "rb") as f:
        weights = safetensors.numpy.load(f.read())
    trained = artifact.trained_weight_map(saved["model"], saved["encoder"])
    assert sorted(weights) == sorted(trained) == saved["config"]["trained_weights"]
    assert all("adapter" in n or "layer_norm" in n or n.startswith("head/") for n in weights)
    assert saved["config"]["trained_params"] == sum(w.size for w in weights.values())
    assert saved["config"]["global_step"] == 7 and saved["config"]["format_version"] == 1


def test_reload_onto_the_same_base_gives_the_same_outputs(saved):
    # The run's output dir is accepted too (its task_artifact/ is found).
    assert artifact.read_task_config(saved["run"]) == saved["config"]
    model, encoder = _task_model()  # Same base, fresh adapters and head.
    inputs = random_inputs()
    assert not np.allclose(model(inputs), saved["model"](inputs))
    artifact.load_artifact_weights(model, encoder, saved["run"])
    np.testing.assert_allclose(np.asarray(model(inputs)), np.asarray(saved["model"](inputs)),
                               rtol=1e-6, atol=1e-6)


def test_another_base_is_refused(saved):
    model, encoder = _task_model(seed=5)
    with pytest.raises(ValueError, match="fingerprint"):
        artifact.load_artifact_weights(model, encoder, saved["folder"])


def test_weights_that_do_not_fit_are_listed(saved):
    model, encoder = _task_model(adapter_size=3)  # Same base weights, other adapter size.
    config_path = os.path.join(saved["folder"], "task_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["base_fingerprint"] = base_fingerprint(encoder)
    with open(config_path, "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=r"does not fit the task model: .*expected \(8, 3\), "
                                         r"found \(8, 2\)"):
        artifact.load_artifact_weights(model, encoder, saved["folder"])


def test_a_trained_weight_missing_from_the_file_is_named(saved):
    path = os.path.join(saved["folder"], "weights.safetensors")
    weights = artifact.read_weights(path)
    del weights["head/bias"]
    with open(path, "wb") as f:
        f.write(safetensors.numpy.save(weights))
    model, encoder = _task_model()
    with pytest.raises(ValueError, match=r"head/bias: missing"):
        artifact.load_artifact_weights(model, encoder, saved["folder"])


def test_incomplete_or_foreign_artifacts(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete task artifact"):
        artifact.read_task_config(str(tmp_path / "empty"))
    path = os.path.join(saved["folder"], "task_config.json")
    with open(path, "w") as f:
        json.dump({"format_version": 99}, f)
    with pytest.raises(ValueError, match="format_version 99, expected 1"):
        artifact.read_task_config(saved["folder"])
    with open(path, "w") as f:
        json.dump([1, 2], f)
    with pytest.raises(ValueError, match="expected a JSON object"):
        artifact.read_task_config(saved["folder"])
