"""hparams files: plain Python `get_config()` / `get_sweep()`, loaded and checked.

An hparams file (big_vision style) is a Python module with
  - a docstring giving the command and, once measured, the expected scores;
  - `get_config()`: a dict of settings shared by every trial (fields of the runner's
    config class: `ClassifierConfig` or `SquadConfig`);
  - `get_sweep()`: a list of dicts, one per trial, each overriding a few
    settings; `grid(...)` builds a product, lists concatenate;
  - optionally `RUNNER = "run_squad.py"` when another runner owns the file
    (the default is `run_classifier.py`).
A variant imports its base (`from hparams import glue_adapters_large as base`)
and changes a few fields.

Every field is checked against the runner's config class before anything runs: an unknown
name or a value of the wrong type is an error naming the file and the entry.

Example:
    hp = load_hparams("hparams/minilm_smoke.py")
    [trial_name(t) for t in hp.sweep]  # ["lr=0.001,seed=0", ...]
"""

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import itertools
import json
import os
import re
import sys
import traceback
import typing


DEFAULT_RUNNER = "run_classifier.py"
RUNNERS = ("run_classifier.py", "run_squad.py")
# Each runner's settings class, imported on use (it brings TensorFlow).
_CONFIG_CLASSES = {
    "run_classifier.py": ("bert_adapters.tasks.classification", "ClassifierConfig"),
    "run_squad.py": ("bert_adapters.tasks.squad", "SquadConfig"),
}


def config_class(runner=DEFAULT_RUNNER):
    """The settings dataclass of `runner` (a `training.RunConfig` subclass)."""
    module, name = _CONFIG_CLASSES[runner]
    return getattr(importlib.import_module(module), name)
# One strategy serves every trial of a process (a TPU system is initialised
# once), so the hardware cannot change from trial to trial.
UNSWEEPABLE = ("distribution_strategy", "tpu", "tpu_zone", "gcp_project", "num_gpus",
               "cpu_replicas")
# Short names in trial names; other fields appear in full.
SHORT_NAMES = {
    "learning_rate": "lr", "num_train_epochs": "ep", "adapter_size": "size",
    "num_tuned_layers": "k", "adapter_init_scale": "init", "train_batch_size": "bs",
    "max_seq_length": "len", "max_train_steps": "steps", "warmup_proportion": "warmup",
    "weight_decay": "wd", "adapter_layers": "layers",
}
_MAX_NAME = 160  # Trial names are directory names (255 bytes at most).


@dataclasses.dataclass(frozen=True)
class Hparams:
    """A loaded hparams file.

    Args:
        path: the file, as given.
        runner: the script that runs it (`RUNNER`, default run_classifier.py).
        config: `get_config()`, settings shared by every trial.
        sweep: `get_sweep()`, one dict of settings per trial, in order.
        doc: the module docstring.
    """

    path: str
    runner: str
    config: dict
    sweep: tuple
    doc: str

    @property
    def swept_fields(self):
        """The fields any trial sets, in first-seen order."""
        return list(dict.fromkeys(k for trial in self.sweep for k in trial))

    @property
    def trial_names(self):
        return [trial_name(t) for t in self.sweep]


def grid(**axes):
    """The product of `axes` as a list of dicts; the first axis varies slowest.

    grid(learning_rate=[3e-5, 3e-4], seed=[0, 1]) ==
        [{"learning_rate": 3e-5, "seed": 0}, {"learning_rate": 3e-5, "seed": 1},
         {"learning_rate": 3e-4, "seed": 0}, {"learning_rate": 3e-4, "seed": 1}]
    """
    names = list(axes)
    values = [list(axes[name]) for name in names]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid(): axis {name!r} has no values")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def trial_name(trial):
    """A trial's directory name, from its swept values in the order given.

    `{"learning_rate": 3e-4, "seed": 1}` -> `"lr=0.0003,seed=1"`. The same
    values always give the same name, so a restarted sweep finds its trials.
    """
    if not trial:
        return "base"
    name = ",".join(f"{SHORT_NAMES.get(k, k)}={_format_value(v)}" for k, v in trial.items())
    if len(name) > _MAX_NAME:  # Keep it a valid file name, still unique.
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[:_MAX_NAME - 13]},{digest}"
    return name


def _format_value(value):
    if isinstance(value, float):
        return repr(value)  # Shortest exact form: 3e-05, 0.0003, 3.0.
    if isinstance(value, (list, tuple)):
        return "+".join(_format_value(v) for v in value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(value))


def load_hparams(path, runner=DEFAULT_RUNNER):
    """Loads and checks an hparams file.

    Args:
        path: a Python file with `get_config()` and `get_sweep()`.
        runner: the script asking; a file whose `RUNNER` names another script
            is refused (run_classifier.py cannot run a SQuAD sweep).

    Returns:
        `Hparams`.

    Raises:
        ValueError: naming the file, the entry and the field at fault.
    """
    module = _user_code(path, _import_file, path)
    file_runner = getattr(module, "RUNNER", DEFAULT_RUNNER)
    if file_runner not in RUNNERS:
        raise ValueError(f"{path}: RUNNER = {file_runner!r}; expected one of {RUNNERS}")
    if file_runner != runner:
        raise ValueError(f"{path} is a sweep for {file_runner} (RUNNER = {file_runner!r}); "
                         f"{runner} cannot run it")
    for fn in ("get_config", "get_sweep"):
        if not callable(getattr(module, fn, None)):
            raise ValueError(f"{path}: an hparams file defines {fn}()")
    config = _user_code(path, module.get_config)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: get_config() must return a dict of settings, "
                         f"got {type(config).__name__}")
    cls = config_class(file_runner)
    check_fields(config, f"{path}: get_config()", cls)
    sweep = _user_code(path, module.get_sweep)
    if not isinstance(sweep, (list, tuple)) or not sweep:
        raise ValueError(f"{path}: get_sweep() must return a non-empty list of dicts "
                         f"(use [{{}}] for a single run), got {sweep!r:.80}")
    seen = {}
    for i, trial in enumerate(sweep):
        where = f"{path}: get_sweep()[{i}]"
        if not isinstance(trial, dict):
            raise ValueError(f"{where}: expected a dict of settings, got {trial!r:.80}")
        check_fields(trial, where, cls)
        unsweepable = [k for k in trial if k in UNSWEEPABLE]
        if unsweepable:
            raise ValueError(f"{where}: {unsweepable} cannot vary between trials (one "
                             f"distribution strategy serves the whole sweep); set it in "
                             f"get_config() or on the command line")
        name = trial_name(trial)
        if name in seen:
            raise ValueError(f"{where} repeats get_sweep()[{seen[name]}] ({name}): every "
                             f"trial must differ")
        seen[name] = i
    return Hparams(path=str(path), runner=file_runner, config=dict(config),
                   sweep=tuple(dict(t) for t in sweep), doc=module.__doc__ or "")


def check_fields(values, where, cls=None):
    """Raises unless every key is a field of `cls` with a value of its type.

    `cls`: the runner's settings class (default: run_classifier.py's).
    """
    cls = cls or config_class()
    types = {f.name: hint for f in dataclasses.fields(cls)
             for hint in [typing.get_type_hints(cls)[f.name]]}
    for key, value in values.items():
        if key not in types:
            close = difflib.get_close_matches(str(key), list(types), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: unknown field {key!r} (not a {cls.__name__} "
                             f"setting{hint})")
        if not _type_ok(value, types[key]):
            raise ValueError(f"{where}: {key}={value!r} is a {type(value).__name__}, expected "
                             f"{_type_text(types[key])}")
        try:
            json.dumps(value)
        except TypeError:
            raise ValueError(f"{where}: {key}={value!r} cannot be written as JSON") from None


def _type_ok(value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _type_text(hint):
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_text(a) for a in args)
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is tuple:
        return "a list of str"
    return hint.__name__


def _user_code(path, fn, *args):
    """Runs the hparams file's code; its errors become one line naming the file and line.

    A syntax error, a misspelt name or a failing `get_sweep()` in an hparams
    file is the user's to fix, so it is reported as `file:line: error`, not
    as a traceback through this package.
    """
    try:
        return fn(*args)
    except SyntaxError as err:
        where = f"{err.filename or path}:{err.lineno}" if err.lineno else (err.filename or path)
        raise ValueError(f"{where}: syntax error: {err.msg}") from None
    except (FileNotFoundError, ValueError) as err:
        if getattr(err, "__traceback__", None) is None or not _frames_in(path, err):
            raise  # This module's own readable errors.
        raise ValueError(_where(path, err)) from None
    except Exception as err:  # pylint: disable=broad-except
        raise ValueError(_where(path, err)) from None


def _frames_in(path, err):
    """The traceback frames of `err` in the hparams file's folder (the file, its bases)."""
    folder = os.path.dirname(os.path.abspath(path))
    return [f for f in traceback.extract_tb(err.__traceback__)
            if os.path.dirname(os.path.abspath(f.filename)) == folder]


def _where(path, err):
    frames = _frames_in(path, err)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else path
    return f"{where}: {type(err).__name__}: {err}"


def _import_file(path):
    """Imports an hparams file; a file in a package (hparams/) by its dotted name.

    Importing through the package lets a variant say
    `from hparams import glue_adapters_large as base`.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(path) or not path.endswith(".py"):
        raise FileNotFoundError(f"hparams file {path} not found (expected a .py file)")
    folder, stem = os.path.split(path[:-3])
    if os.path.isfile(os.path.join(folder, "__init__.py")):
        root, package = os.path.split(folder)
        if root not in sys.path:
            sys.path.insert(0, root)
        module = importlib.import_module(f"{package}.{stem}")
        if os.path.abspath(module.__file__) != path:
            raise ValueError(f"{path}: importing {package}.{stem} found {module.__file__} "
                             f"instead; is another {package!r} package on sys.path?")
        return module
    spec = importlib.util.spec_from_file_location(f"_hparams_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
