"""What a training run measured of itself: `train_stats.json` beside `eval_results.json`.

  train_steps              steps this process trained (a resumed run: since the resume)
  examples_per_second      global examples per second over the timed steps
  step_seconds             wall seconds per step over the timed steps
  timed_steps              the steps timed: all but the first loop's, which
                           traces and compiles the step (its time is
                           `first_loop_seconds`); all of them when the run
                           had only one loop
  peak_rss_bytes           the process's peak resident memory while training
                           (Linux; reset when training starts, so the trials of
                           a sweep each report their own), or null
  peak_device_memory_bytes the largest of the GPUs' peak allocations while
                           training (`tf.config.experimental.get_memory_info`),
                           or null without a GPU

The analysis reads it from each trial of a sweep
(`python -m bert_adapters.analysis adapter_layers`).
"""

import tensorflow as tf

from bert_adapters import io_utils

STATS_FILE = "train_stats.json"


class TrainMeter:
    """Times the training loops of one run and reads its peak memory.

    Args:
        batch_size: the global training batch size.
        start_step: the step the run starts (or resumes) from.
    """

    def __init__(self, batch_size, start_step=0):
        self.batch_size = batch_size
        self.start_step = start_step
        self.loops = []   # (steps, seconds) of each training loop
        _reset_peak_rss()
        self._gpus = [d.name.split("device:")[-1] for d in tf.config.list_logical_devices("GPU")]
        for gpu in self._gpus:
            tf.config.experimental.reset_memory_stats(gpu)

    def loop_done(self, steps, seconds):
        self.loops.append((steps, seconds))

    def record(self):
        """The `train_stats.json` fields (see the module docstring)."""
        timed = self.loops[1:] or self.loops
        steps = sum(n for n, _ in timed)
        seconds = sum(s for _, s in timed)
        peaks = [tf.config.experimental.get_memory_info(gpu)["peak"] for gpu in self._gpus]
        return {
            "train_steps": sum(n for n, _ in self.loops), "start_step": self.start_step,
            "timed_steps": steps, "timed_seconds": round(seconds, 4),
            "first_loop_seconds": round(self.loops[0][1], 4) if self.loops else None,
            "step_seconds": seconds / steps if steps else None,
            "examples_per_second": steps * self.batch_size / seconds if seconds else None,
            "peak_rss_bytes": _peak_rss_bytes(),
            "peak_device_memory_bytes": max(peaks) if peaks else None,
        }


def write(output_dir, record):
    io_utils.write_json(io_utils.join(output_dir, STATS_FILE), record)


def _reset_peak_rss():
    """Resets the kernel's record of this process's peak RSS (`VmHWM`; Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # Not Linux, or not allowed: the peak is then the process's own.


def _peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
