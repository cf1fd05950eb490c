"""A run's trained weights, and "train, interrupt, resume, compare" in one place."""

import os

import numpy as np
import pytest
import safetensors.numpy


class Interrupted(Exception):
    """Raised by `stop_after`'s callback: the job died after that step."""


def run_weights(output_dir):
    """{name: array} of the task artifact's trained weights in a run's output directory."""
    with open(os.path.join(output_dir, "task_artifact", "weights.safetensors"), "rb") as f:
        return safetensors.numpy.load(f.read())


def assert_same_weights(a, b, rtol=1e-6, atol=1e-7):
    """The same weight names, each equal within the tolerance."""
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def stop_after(run, step):
    """Calls `run(step_callback)`, which must stop with `Interrupted` after training `step`."""
    def interrupt(done):
        if done == step:
            raise Interrupted(step)

    with pytest.raises(Interrupted):
        run(interrupt)


def interrupt_and_resume(run, step):
    """`run` stopped after `step`, then run again to the end; the steps the resumed run took."""
    stop_after(run, step)
    resumed = []
    run(resumed.append)
    return resumed
