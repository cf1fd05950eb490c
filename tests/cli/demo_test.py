"""`make demo`'s command: the embedded encoder on MRPC, a few steps, its report."""

import json
import re
import subprocess
import sys

import pytest

from bert_adapters.ops import host
from bert_adapters.training import distribution
from conftest import REPO_ROOT, require_data


@pytest.mark.slow
def test_the_demo_trains_and_reports(tmp_path):
    glue = require_data("glue")
    done = subprocess.run(
        [sys.executable, "-m", "bert_adapters.cli.demo", f"--glue_dir={glue}",
         f"--output_dir={tmp_path / 'demo'}", "--max_train_steps=2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The precision this CPU runs faster (host_test covers the choice per CPU).
    expected = "bf16" if host.bf16_faster_than_fp32() else "fp32"
    assert f"Training in {expected} (chosen for this CPU: " in out, out
    assert re.search(r"cosine [+-]\d\.\d{3}", out)            # the encoder's similarities
    found = re.search(r"accuracy (\d+\.\d)   F1 (\d+\.\d)\s+\(2 steps", out)
    assert found and 0 < float(found.group(1)) <= 100, out
    assert "trained: 605,954 of 22,713,216 base parameters (2.67%)" in out, out
    assert (tmp_path / "demo" / "eval_results.json").exists()
    # A replica per core on a small CPU (distribution_test covers the choice).
    cores = distribution.cpu_cores()
    replicas = cores if 2 <= cores <= distribution.AUTO_CPU_REPLICAS_MAX_CORES \
        and 32 % cores == 0 else 1
    record = json.loads((tmp_path / "demo" / "run_config.json").read_text())
    assert record["replicas_in_sync"] == replicas
    assert (f", {replicas} replicas, one per core" in out) == (replicas > 1), out
