"""The run directory (`--workdir`): the names of its files, and the code that writes and reads them.

    <workdir>/
      config.json      the config of the last run there (`write_run_info`, `read_run_info`)
      data.json        class names and colour statistics: what predict needs to preprocess
      metrics.jsonl    one JSON object per progress line and per evaluation (`MetricsWriter`,
                       `read_metrics`)
      tensorboard/     the same scalars as TensorBoard events
      checkpoints/     one folder per saved step (`alexnet_jax.checkpoints` owns what is inside)
      .lock            held while a run trains there (`WorkdirLock`)

Every other module names these files through the constants below. Process 0
writes config.json, data.json and metrics.jsonl; every process writes its
checkpoint shards, so in a multi-host run the workdir must be one shared
directory (`distributed.check_shared_directory`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from typing import Any, Sequence

from absl import logging

from alexnet_jax.errors import MissingFileError, UserError

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_SUBDIR = "checkpoints"
LOCK_FILE = ".lock"


class WorkdirError(UserError, ValueError):
    """The workdir cannot be used (not writable, in use by another run, nothing logged there yet)."""


def prepare(workdir: str) -> None:
    """Creates `workdir` and checks that this process can write there (before any work is done)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test_{socket.gethostname()}_{os.getpid()}")
        with open(probe, "w") as file:
            file.write("")
        os.remove(probe)
    except OSError as error:
        raise WorkdirError(
            f"Cannot write to the workdir {workdir!r} ({type(error).__name__}: "
            f"{error.strerror or error}). Choose a writable --workdir."
        ) from None


class WorkdirLock:
    """`<workdir>/.lock`, held with `fcntl.flock`: one training run per workdir.

    The kernel releases the lock when its process dies, however it dies, so a
    killed run never blocks the next one; the file's JSON (host, pid) only
    serves the message a second, concurrent run prints.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self._file = None

    def acquire(self) -> None:
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = _parse_json(file.read())
            file.close()
            raise WorkdirError(
                f"{os.path.dirname(self.path)} is in use by another run (host "
                f"{holder.get('host', '?')}, process {holder.get('pid', '?')}). Wait for it to "
                "finish, or use another --workdir."
            ) from None
        file.seek(0)
        previous = _parse_json(file.read())
        if previous.get("pid") not in (None, os.getpid()):
            logging.warning(
                "Taking over the stale lock %s of process %s, which no longer runs.",
                self.path,
                previous.get("pid"),
            )
        file.seek(0)
        file.truncate()
        json.dump({"host": socket.gethostname(), "pid": os.getpid()}, file)
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self._file.close()  # closing releases the flock
            self._file = None


def _parse_json(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


# ---------------------------------------------------------------------------
# config.json and data.json


def config_differences(workdir: str, config, fields: Sequence[str] | None = None) -> list[str]:
    """'field: X in <workdir>/config.json, Y here' for each of `fields` (default: all) that
    differs; [] without a config.json."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as file:
        saved = json.load(file)
    current = json.loads(config.to_json_best_effort())
    names = sorted(set(saved) | set(current)) if fields is None else fields
    return [
        f"{name}: {saved.get(name)!r} in {path}, {current.get(name)!r} here"
        for name in names
        if saved.get(name) != current.get(name)
    ]


def write_run_info(workdir: str, config, class_names: Sequence[str], color_stats) -> None:
    """config.json and data.json: what predict and notebooks need to rebuild the model and the
    preprocessing (`color_stats`: mean, std, eigval, eigvec of the training pixels).

    A config.json of an earlier run in the workdir that differs from `config` is reported (a
    resumed run continues with the new values) before it is replaced.
    """
    changed = config_differences(workdir, config)
    if changed:
        logging.warning(
            "This config differs from the one an earlier run wrote in %s; a resumed run "
            "keeps its weights and optimizer state and goes on with the new values: %s",
            workdir,
            "; ".join(changed),
        )
    with open(os.path.join(workdir, CONFIG_FILE), "w") as file:
        file.write(config.to_json_best_effort(indent=2))
    stats = {name: getattr(color_stats, name) for name in ("mean", "std", "eigval", "eigvec")}
    with open(os.path.join(workdir, DATA_FILE), "w") as file:
        json.dump({"class_names": list(class_names), "color_stats": stats}, file, indent=2)


def read_run_info(workdir: str) -> tuple[Any, dict]:
    """(config as a ConfigDict, data.json's dict) that training saved in `workdir`."""
    import ml_collections

    paths = [os.path.join(workdir, name) for name in (CONFIG_FILE, DATA_FILE)]
    for path in paths:
        if not os.path.isfile(path):
            raise MissingFileError(
                f"{path} not found: is {workdir!r} the --workdir of a training run?"
            )
    with open(paths[0]) as file:
        config = ml_collections.ConfigDict(json.load(file))
    with open(paths[1]) as file:
        info = json.load(file)
    return config, info


# ---------------------------------------------------------------------------
# metrics.jsonl and TensorBoard


class MetricsWriter:
    """`<workdir>/metrics.jsonl` (one JSON object per event) and TensorBoard events.

    Only the writer with `enabled` (process 0's) writes; the others do nothing.
    """

    def __init__(self, workdir: str, enabled: bool):
        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS_FILE)
        self._tensorboard = None
        if enabled:
            import tensorflow as tf  # TensorBoard's event writer

            self._tf = tf
            self._tensorboard = tf.summary.create_file_writer(
                os.path.join(workdir, TENSORBOARD_DIR)
            )

    def truncate_after(self, step: int) -> None:
        """Drops events after `step` (written by a run that died before its next checkpoint)."""
        if not self.enabled or not os.path.exists(self.path):
            return
        kept = []
        with open(self.path) as file:
            for line in file:
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except ValueError:
                    pass  # a line cut short by a kill or a full disk
        with open(self.path + ".tmp", "w") as file:
            file.writelines(kept)
        os.replace(self.path + ".tmp", self.path)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        record = {
            "step": int(step),
            **{k: v if isinstance(v, str) else float(v) for k, v in metrics.items()},
        }
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")
        with self._tensorboard.as_default(step=int(step)):
            for name, value in record.items():
                if name != "step" and not isinstance(value, str):
                    self._tf.summary.scalar(name, value)
        self._tensorboard.flush()


def read_metrics(workdir: str) -> list[dict]:
    """The records of `<workdir>/metrics.jsonl`, in file order; a line cut short by a kill is skipped.

    Raises MissingFileError (no file: not a training workdir, or nothing
    logged yet) or WorkdirError (no record with a step).
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{path} not found: {workdir!r} is not the --workdir of a training run, or the run has "
            f"not logged yet. Train first (python main.py --workdir={workdir}) or point --workdir at "
            "a run."
        )
    records = []
    with open(path) as file:
        for line in file:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    if not records:
        raise WorkdirError(
            f"{path} holds no records yet; let the run log at least once (every log_every_steps)."
        )
    return records
