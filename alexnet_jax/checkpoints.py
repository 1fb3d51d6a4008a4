"""Checkpoints: an Orbax `CheckpointManager` wrapper for the training loop.

One checkpoint per saved step, in `<directory>/<step>/`, holding two items:
- `state/`: any pytree of `jax.Array`s (sharded or not), numpy arrays and
  Python scalars, typically the train state with a `'params'` entry; written
  by `ocp.args.StandardSave` (tensorstore/OCDBT, each process its own shards).
- `metadata/`: a JSON-serialisable dict (schedule state, data position,
  config snapshot...), written by `ocp.args.JsonSave`.
Orbax adds `metrics/` (the metrics given to `save`) and commit markers.

Retention: the latest `max_to_keep` checkpoints plus, with `keep_best`, the
best one by `best_metric` (lower is better by default). It is Orbax's own
`AnyPreservationPolicy(LatestN, BestN)`. The metrics are written with every
checkpoint, so the best one survives a restart of the job.

Saving is asynchronous by default: `save` returns once the arrays are copied
to host memory (Orbax schedules every device-to-host copy before returning
when no transfer byte limit is set), so the caller may donate or overwrite
them at once; writing to disk then goes on in a background thread. `wait()`
blocks until it is done, `close()` waits too.

`Checkpointer.restore(target)` needs an abstract target whose leaves carry the
sharding wanted now (`jax.ShapeDtypeStruct(shape, dtype, sharding=...)`),
which may be on another mesh than the one that saved. `load_params` reads just
the `'params'` subtree into host numpy arrays in any process, e.g. a
single-device evaluation or export script, whatever mesh wrote it.

Typical use in the training loop::

    ckpt = Checkpointer(os.path.join(workdir, CHECKPOINT_SUBDIR))
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(abstract_state)  # leaves with NamedShardings
    ...
    ckpt.save(step, state, {"data_position": pos}, metrics={"val_top1_error": err})
    ...
    ckpt.close()
"""

from __future__ import annotations

import json
import logging as std_logging
import math
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint import checkpoint_managers as ocp_policies
from orbax.checkpoint._src.metadata import array_metadata_store as array_metadata_store_lib

from alexnet_jax import distributed
from alexnet_jax.errors import ConfigError, MissingFileError, UserError
from alexnet_jax.rundir import CHECKPOINT_SUBDIR  # checkpoints live in <workdir>/checkpoints

__all__ = [
    "CHECKPOINT_SUBDIR",
    "Checkpointer",
    "load_params",
    "quiet_orbax_logging",
]

_STATE = "state"
_METADATA = "metadata"
_BEST_MODES = ("min", "max")


# --------------------------------------------------------------------------
# Logging


class _DropOrbaxInfo(std_logging.Filter):
    """Drops records below WARNING that were logged from inside the orbax package."""

    def __init__(self):
        super().__init__()
        orbax_package = os.path.dirname(os.path.dirname(os.path.abspath(ocp.__file__)))  # .../orbax
        self._orbax_dir = os.path.join(orbax_package, "")

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno >= std_logging.WARNING:
            return True
        return not os.path.abspath(record.pathname).startswith(self._orbax_dir)


_orbax_filter = _DropOrbaxInfo()


def quiet_orbax_logging(quiet: bool = True) -> None:
    """Hides Orbax's INFO (and verbose) log lines; its warnings and errors still show.

    Orbax logs through `absl.logging`, like this project, so its lines cannot be
    told apart by logger name; a filter on the absl logger drops the records
    below WARNING whose source file is inside the `orbax` package. Idempotent;
    `quiet=False` removes the filter again (for debugging a save or restore).
    """
    absl_logger = logging.get_absl_logger()
    if quiet:
        if _orbax_filter not in absl_logger.filters:
            absl_logger.addFilter(_orbax_filter)
    else:
        absl_logger.removeFilter(_orbax_filter)


# --------------------------------------------------------------------------
# How arrays are written


def _write_replicated_arrays_from_one_device_on_cpu() -> None:
    """On the CPU backend, each array's replicas are written by one device, not split among them.

    Orbax's default "replica-parallel" save cuts a replicated array into one
    slice per replica, each written by its own device, which pays where
    devices have their own memory and links to the host. CPU devices share
    the host's memory: the split buys nothing and costs a compiled slicing
    program per array shape and replica at the first save of each process (the
    paper model's parameters and momentum, replicated on 8 CPU devices: first
    save 6.4-9.0 s with it, 2.8-7.6 s without, on a busy 2-core machine).
    Orbax already turns it off for GPU platforms. Registered once per process,
    globally: `StandardSave` takes no handler registry.
    """
    global _replicated_arrays_handled
    if _replicated_arrays_handled or jax.default_backend() != "cpu":
        return
    handler = ocp.type_handlers.ArrayHandler(
        use_replica_parallel=False,
        # as in Orbax's default registration: per-host array metadata is kept
        array_metadata_store=array_metadata_store_lib.Store(),
    )
    absl_logger = logging.get_absl_logger()
    level = absl_logger.level
    absl_logger.setLevel(std_logging.ERROR)  # not its warning that a default is overridden
    try:
        ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)
    finally:
        absl_logger.setLevel(level)
    _replicated_arrays_handled = True


_replicated_arrays_handled = False


# --------------------------------------------------------------------------
# Writing and resuming


class Checkpointer:
    """Saves and restores `(state, metadata)` checkpoints of one training run.

    Args:
      directory: where the step directories go, e.g. `<workdir>/checkpoints`;
        created if missing.
      max_to_keep: how many of the latest checkpoints to keep (None: all).
      keep_best: also keep the best checkpoint by `best_metric`, however old.
      best_metric: key of the `metrics` dict passed to `save` that ranks
        checkpoints. A checkpoint saved without it (or with NaN) never counts
        as the best.
      async_save: write to disk in a background thread (see the module
        docstring for why it is safe with donated buffers).
      best_mode: `'min'` (default: lower is better, as for an error rate) or
        `'max'`.
      quiet: hide Orbax's INFO log lines (`quiet_orbax_logging`).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int | None = 3,
        keep_best: bool = True,
        best_metric: str = "val_top1_error",
        async_save: bool = True,
        *,
        best_mode: str = "min",
        quiet: bool = True,
    ):
        if max_to_keep is not None and max_to_keep < 1:
            raise ConfigError(
                f"max_to_keep must be a positive number or None (keep all); got {max_to_keep}."
            )
        if best_mode not in _BEST_MODES:
            raise ConfigError(f"best_mode must be one of {_BEST_MODES}; got {best_mode!r}.")
        if quiet:
            quiet_orbax_logging()
        _write_replicated_arrays_from_one_device_on_cpu()
        self.directory = os.path.abspath(os.fspath(directory))
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.keep_best = keep_best

        policies: list[Any] = [ocp_policies.LatestN(n=max_to_keep)]
        if keep_best:
            # BestN sorts ascending (descending with reverse=True) and keeps the tail.
            policies.append(
                ocp_policies.BestN(
                    get_metric_fn=self._rank_value,
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,  # else kept forever; LatestN decides
                )
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp_policies.AnyPreservationPolicy(policies),
            # Orbax writes the metrics next to a checkpoint only when best_fn is
            # set; without them a restarted job would forget which step is best.
            best_fn=self._rank_value if keep_best else None,
            best_mode=best_mode,
            enable_async_checkpointing=async_save,
            create=True,
        )
        if jax.process_index() == 0 and os.path.isdir(self.directory):
            for step, reason in _steps_with_unreadable_json(self.directory).items():
                _set_aside(self.directory, step, reason)
        # before any process lists the steps
        distributed.barrier("checkpoints: damaged steps set aside")
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(_STATE, _METADATA)
        )
        self._closed = False

    def _rank_value(self, metrics: Mapping[str, Any]) -> float:
        """The metric that ranks a checkpoint; a missing or NaN value ranks last."""
        worst = math.inf if self.best_mode == "min" else -math.inf
        value = metrics.get(self.best_metric) if metrics else None
        if value is None or math.isnan(float(value)):
            return worst
        return float(value)

    def save(
        self,
        step: int,
        state: Any,
        metadata: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Saves `state` and `metadata` as the checkpoint of `step`; returns whether it did.

        Args:
          step: the training step; also the directory name.
          state: pytree of arrays and scalars, sharded however the caller likes.
          metadata: JSON-serialisable dict stored beside the state.
          metrics: scalar metrics of this step (Python, numpy or 0-d jax
            numbers); `metrics[best_metric]` ranks the checkpoint for `keep_best`.
          force: save even where Orbax's save policy would skip the step, i.e.
            a step that is not newer than the latest one. An existing step is
            never overwritten (ValueError).

        Returns False, and writes nothing, for a step not newer than the latest
        saved one unless `force`. With `async_save` the write goes on after
        return; `wait()` or `close()` make sure it is on disk.
        """
        step = int(step)
        if not isinstance(metadata, Mapping):
            raise TypeError(
                f"metadata must be a dict of JSON-serialisable values; got {type(metadata).__name__}."
            )
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"metadata for step {step} is not JSON-serialisable ({e}); convert numpy/jax values with "
                "int(), float() or .tolist() first."
            ) from None
        # Always some metrics: Orbax warns on every save without them once best_fn is set.
        metrics = {str(k): float(v) for k, v in (metrics or {}).items()}
        saved = self._manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    _STATE: ocp.args.StandardSave(state),
                    _METADATA: ocp.args.JsonSave(dict(metadata)),
                }
            ),
            metrics=metrics,
            force=force,
        )
        if not saved:
            logging.info(
                "Checkpoint for step %d not saved: the latest checkpoint is step %s.",
                step,
                self.latest_step(),
            )
        return saved

    def wait(self) -> None:
        """Blocks until pending asynchronous saves (and the deletions they cause) are done."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases Orbax's threads; safe to call twice."""
        if not self._closed:
            self._manager.close()
            self._closed = True

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def all_steps(self) -> list[int]:
        """Steps with a checkpoint (including one still being written), ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step, or None when there is no checkpoint."""
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the best `best_metric`; the latest step if `keep_best` is off or none has it; None if empty."""
        return self._manager.best_step()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores `(state, metadata)` of `step` (default: the latest).

        Args:
          target: pytree with the structure of the saved state whose array
            leaves are `jax.ShapeDtypeStruct(shape, dtype, sharding=...)` (or
            arrays); each array comes back with that leaf's sharding, on any
            mesh, not necessarily the one that saved it. Python scalar leaves
            come back as saved.
          step: which checkpoint; None for the latest.

        Raises:
          FileNotFoundError: no checkpoint in the directory.
          ValueError: `step` is not among the saved steps (the message lists them).
        """
        self.wait()  # a step being written is in all_steps() but not readable yet
        step = _choose_step(self.directory, self.all_steps(), step)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{_STATE: ocp.args.StandardRestore(target), _METADATA: ocp.args.JsonRestore()}
            ),
        )
        return restored[_STATE], dict(restored[_METADATA])

    def damaged_steps(self) -> list[str]:
        """Names of the step directories set aside as damaged (`<step>.damaged`), now or by an earlier run."""
        if not os.path.isdir(self.directory):
            return []
        return sorted(name for name in os.listdir(self.directory) if ".damaged" in name)

    def read_metadata(self, step: int) -> dict:
        """Only the JSON metadata of `step` (cheap; raises if that part is unreadable)."""
        self.wait()
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{_METADATA: ocp.args.JsonRestore()})
        )
        return dict(restored[_METADATA])

    def restore_latest_readable(self, target: Any, check=None) -> tuple[int, Any, dict]:
        """Restores the newest checkpoint that reads back whole, skipping damaged ones with a warning.

        `check(step, metadata)` may raise `CheckpointMismatchError` (a checkpoint
        of another model): that stops at once instead of falling back. Raises
        `CheckpointError` when no checkpoint is readable: a run never starts
        from scratch silently over existing checkpoints.
        """
        self.wait()
        steps = self.all_steps()
        skipped = self.damaged_steps()
        for step in reversed(steps):
            damage = None
            try:
                metadata = self.read_metadata(step)
                if check is not None:
                    check(step, metadata)
                state, metadata = self.restore(target, step)
            except CheckpointMismatchError:
                raise
            except Exception as error:  # Orbax reports damage with many exception types
                damage = (
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[
                        :300
                    ]
                )
            # Each process reads its own shards: a step damaged for one process is damaged for all.
            if not distributed.any_process(damage is not None):
                return step, state, metadata
            if jax.process_index() == 0:
                _set_aside(self.directory, step, damage or "unreadable on another process")
            distributed.barrier(f"checkpoints: step {step} set aside")
            self._manager.reload()
            skipped.append(step)
        raise CheckpointError(
            f"None of the checkpoints in {self.directory} can be read ({', '.join(map(str, skipped))}; damaged ones "
            "are kept as <step>.damaged). Move the directory away to start from scratch, or restore it from a backup."
        )


class CheckpointError(UserError, RuntimeError):
    """No usable checkpoint where one was expected; the message says what to do."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written by a different model (variant, towers, class count)."""


def model_check(directory: str, config, param_shapes: dict, opt_state_structure: str | None = None):
    """A `check(step, metadata)` for `restore_latest_readable`: raises CheckpointMismatchError when the
    checkpoint's metadata says another network (`param_shapes` differ) or another optimizer setup
    (`opt_state_structure` differs) wrote it, naming the differences and `config`'s settings."""

    def check(step: int, metadata: Mapping) -> None:
        saved_structure = metadata.get("opt_state_structure")
        if opt_state_structure is not None and saved_structure not in (None, opt_state_structure):
            raise CheckpointMismatchError(
                f"The checkpoint at step {step} in {directory} holds the state of another optimizer "
                "setup (optimizer, schedule or parameter groups changed since it was written; this "
                f"config: optimizer={config.optimizer!r}, schedule={config.schedule!r}, "
                f"freeze={config.get('freeze', '')!r}, linear_probe={config.get('linear_probe', False)}, "
                f"backbone_lr_scale={config.get('backbone_lr_scale', 1.0)}). Use the settings that "
                "wrote it (see its config.json), or a new --workdir."
            )
        saved = metadata.get("param_shapes")
        if saved is None or saved == param_shapes:
            return
        differences = [
            f"{name}: checkpoint {saved.get(name)} vs config {param_shapes.get(name)}"
            for name in sorted(set(saved) | set(param_shapes))
            if saved.get(name) != param_shapes.get(name)
        ]
        raise CheckpointMismatchError(
            f"The checkpoint at step {step} in {directory} was written by a different model "
            f"({metadata.get('model', 'unknown')}); this config builds model={config.model!r}, "
            f"towers={config.towers}, num_classes={config.num_classes}. Differences: "
            f"{'; '.join(differences[:4])}. Use the config that wrote it, or a new --workdir."
        )

    return check


def resume(checkpointer: Checkpointer, target: Any, check=None) -> tuple[int, Any, dict] | None:
    """The resume policy: (step, state, metadata) of the newest readable checkpoint, or None to start
    fresh.

    None only where there is no checkpoint at all. Damaged checkpoints are skipped with a warning
    (`restore_latest_readable`); when every one is damaged, CheckpointError: a run never starts
    from scratch silently over existing checkpoints. `check` (see `model_check`) refuses a
    checkpoint of another model.
    """
    if checkpointer.latest_step() is None and not checkpointer.damaged_steps():
        return None
    return checkpointer.restore_latest_readable(target, check=check)


_JSON_FILES = (
    "_CHECKPOINT_METADATA",
    os.path.join(_METADATA, _METADATA),
    os.path.join("metrics", "metrics"),
    os.path.join(_STATE, "_METADATA"),
)


def _steps_with_unreadable_json(directory: str) -> dict[int, str]:
    """Step directories whose small JSON files do not parse (a write cut short); Orbax cannot even list those."""
    damaged = {}
    for name in os.listdir(directory):
        if not name.isdigit():
            continue
        for relative in _JSON_FILES:
            path = os.path.join(directory, name, relative)
            if not os.path.exists(path):
                continue
            try:
                with open(path) as file:
                    json.load(file)
            except (OSError, ValueError) as error:
                damaged[int(name)] = f"{relative} unreadable: {type(error).__name__}: {error}"[:300]
                break
    return damaged


def _set_aside(directory: str, step: int, reason: str) -> None:
    """Renames a damaged step directory to <step>.damaged (never deleted), with a warning naming it."""
    source = os.path.join(directory, str(step))
    target = source + ".damaged"
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = f"{source}.damaged{suffix}"
    os.rename(source, target)
    logging.warning(
        "The checkpoint at step %d in %s is damaged or incomplete (%s); it is skipped and kept as %s.",
        step,
        directory,
        reason,
        target,
    )


def _choose_step(directory: str, steps: list[int], step: int | None) -> int:
    """`step`, or the latest of `steps` when None, with errors that name the directory and the steps."""
    if not steps:
        raise MissingFileError(
            f"No checkpoint in {directory}: expected step directories such as {os.path.join(directory, '1000')} "
            "written by alexnet_jax.checkpoints.Checkpointer."
        )
    if step is None:
        return steps[-1]
    if int(step) not in steps:
        raise ConfigError(
            f"No checkpoint for step {step} in {directory}; available steps: {steps}."
        )
    return int(step)


# --------------------------------------------------------------------------
# Reading parameters anywhere


def _checkpoint_dir(path: str | os.PathLike) -> str:
    """`path/checkpoints` if `path` is a workdir holding one, else `path` itself."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise MissingFileError(
            f"{path} does not exist or is not a directory; pass a training workdir or its "
            f"'{CHECKPOINT_SUBDIR}' directory."
        )
    nested = os.path.join(path, CHECKPOINT_SUBDIR)
    return nested if os.path.isdir(nested) else path


def load_params(workdir_or_checkpoint_dir: str | os.PathLike, step: int | None = None) -> dict:
    """The `'params'` subtree of a saved state, as host numpy arrays.

    Works in any single process, e.g. one with a single CPU device, whatever
    mesh and number of devices wrote the checkpoint: each array is read onto
    this process's first device and copied to the host. Only the parameters are
    read, not the optimizer state.

    Args:
      workdir_or_checkpoint_dir: a checkpoint directory, or a training workdir
        containing `checkpoints/`.
      step: which checkpoint; None for the latest.

    Returns:
      A nested dict of `np.ndarray` with the saved shapes and dtypes, e.g.
      `{'conv1': {'kernel': (2, 11, 11, 3, 48) float32, 'bias': ...}, ...}`.

    Raises:
      FileNotFoundError: the path or a checkpoint in it does not exist.
      ValueError: `step` is not saved there (the message lists the saved steps),
        or the saved state has no `'params'` entry.
    """
    quiet_orbax_logging()
    directory = _checkpoint_dir(workdir_or_checkpoint_dir)
    # PyTreeCheckpointHandler rather than StandardCheckpointHandler: only it
    # restores a subtree (partial_restore). The JSON handler is registered only
    # so that Orbax does not warn about an item it cannot read.
    manager = ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(create=False),
        item_handlers={
            _STATE: ocp.PyTreeCheckpointHandler(),
            _METADATA: ocp.JsonCheckpointHandler(),
        },
    )
    try:
        step = _choose_step(directory, sorted(manager.all_steps()), step)
        saved_tree = manager.item_metadata(step)[_STATE]
        if saved_tree is None or not hasattr(saved_tree, "keys") or "params" not in saved_tree:
            keys = (
                sorted(saved_tree.keys())
                if hasattr(saved_tree, "keys")
                else type(saved_tree).__name__
            )
            raise ConfigError(  # a ValueError, as documented
                f"The state saved at step {step} in {directory} has no 'params' entry (top level: {keys})."
            )
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract_params = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            saved_tree["params"],
        )
        target = {"params": abstract_params}
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                **{
                    _STATE: ocp.args.PyTreeRestore(
                        item=target,
                        restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                        partial_restore=True,
                    )
                }
            ),
        )
    finally:
        manager.close()
    return jax.tree.map(np.asarray, jax.device_get(restored[_STATE]["params"]))
