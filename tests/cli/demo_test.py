"""`make demo`'s command: the embedded encoder on MRPC, a few steps, its report."""

import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, require_data


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_demo_trains_and_reports(tmp_path, precision):
    glue = require_data("glue")
    done = subprocess.run(
        [sys.executable, "-m", "bert_adapters.cli.demo", f"--glue_dir={glue}",
         f"--output_dir={tmp_path / 'demo'}", "--max_train_steps=2",
         f"--precision={precision}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"Training in {precision} (as asked: " in out
    assert re.search(r"cosine [+-]\d\.\d{3}", out)            # the encoder's similarities
    found = re.search(r"accuracy (\d+\.\d)   F1 (\d+\.\d)\s+\(2 steps", out)
    assert found and 0 < float(found.group(1)) <= 100, out
    assert "trained: 605,954 of 22,713,216 base parameters (2.67%)" in out, out
    assert (tmp_path / "demo" / "eval_results.json").exists()
