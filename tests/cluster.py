"""Real worker processes on localhost: free ports, TF_CONFIG, bounded waits.

Shared by the multi-worker and start-up order tests. Every process is
started with its own log file and killed (SIGKILL: TensorFlow's coordination
service catches SIGTERM) if it outlives the deadline.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from conftest import REPO_ROOT


def free_ports(count):
    """`count` distinct free TCP ports on localhost."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """TF_CONFIG of worker `index` in a cluster of localhost workers (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class Worker:
    """One started process: `returncode` and `log` once `wait_all` returns."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(args, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        self.returncode = None

    @property
    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.returncode = self.process.wait()
        self._log.close()


def start_workers(script, flags, directory, num_workers=2, worker_flags=None, env=None,
                  only=None):
    """Starts `script` (a repository entry point) once per worker of a localhost cluster.

    Args:
        script: e.g. "run_classifier.py".
        flags: the command-line flags every worker gets.
        directory: where logs (`worker<i>.log`) and each worker's TMPDIR go.
        worker_flags: {index: [extra flags]} for some workers.
        env: extra environment variables for every worker.
        only: indices of the workers to start (default: all).
    """
    ports = free_ports(num_workers)
    workers = []
    for i in range(num_workers) if only is None else only:
        tmp = os.path.join(directory, f"tmp{i}")
        os.makedirs(tmp, exist_ok=True)
        worker_env = {**os.environ, "TF_CONFIG": tf_config(ports, i), "TMPDIR": tmp,
                      "BERT_ADAPTERS_WORKER_WAIT_SECONDS": "120", **(env or {})}
        args = [sys.executable, os.path.join(REPO_ROOT, script), *flags,
                *(worker_flags or {}).get(i, [])]
        workers.append(Worker(args, worker_env, os.path.join(directory, f"worker{i}.log")))
    return workers


def wait_all(workers, timeout):
    """Waits for every worker; kills them all at the deadline. Returns True if all ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(w.process.poll() is None for w in workers):
        time.sleep(0.2)
    ended = all(w.process.poll() is not None for w in workers)
    for w in workers:
        w.kill()
    return ended


def run_workers(script, flags, directory, timeout, **kwargs):
    """`start_workers` then `wait_all`; asserts that none outlived `timeout`."""
    workers = start_workers(script, flags, directory, **kwargs)
    ended = wait_all(workers, timeout)
    assert ended, f"workers still running after {timeout} s:\n" + "\n".join(
        f"--- worker {i}\n{w.log[-3000:]}" for i, w in enumerate(workers))
    return workers


def describe(workers):
    """Each worker's exit code and the end of its log, for assertion messages."""
    return "\n".join(f"--- worker {i}: exit {w.returncode}\n{w.log[-2500:]}"
                     for i, w in enumerate(workers))
