"""The training loop, and evaluation of a run's checkpoints.

The steps it runs come from `alexnet_jax.steps` (pure, jitted with named
shardings). `train_and_evaluate` feeds global batches, logs a progress line and
`<workdir>/metrics.jsonl` (plus TensorBoard events), evaluates exactly (padded,
masked batches), applies the plateau schedule, and checkpoints with Orbax;
rerunning the same command resumes from the latest checkpoint and gives the
same parameters as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from alexnet_jax import (
    checkpoints,
    distributed,
    optim,
    pixels,
    pretrained,
    rundir,
    sharding,
    synthetic,
)
from alexnet_jax.data import batching, sources
from alexnet_jax.errors import MissingFileError, UserError
from alexnet_jax.models import NETWORK_KEYS, AlexNet
from alexnet_jax.steps import (
    TrainState,
    compile_steps,
    create_model,
    create_optimizer,
    create_train_state,
    interval_steps,
    num_train_steps,
    param_shapes,
    parameter_groups,
    state_shardings,
    state_structure,
)


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and what to do."""


class Preempted(Exception):
    """SIGTERM/SIGINT arrived: the current step finished and a checkpoint was written."""


PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: rerun the same command to continue


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------
# Evaluation


def final_eval_crops(config, input_config) -> tuple[str, ...]:
    """The protocols evaluated after the last step besides `eval_crop` (config.final_eval_crops), checked."""
    crops = tuple(config.get("final_eval_crops", ()))
    for crop in crops:
        if crop not in sources.EVAL_CROPS:
            raise sources.DataError(
                f"final_eval_crops={crops!r} has {crop!r}; use crops among {sources.EVAL_CROPS}, "
                "e.g. --config.final_eval_crops=\"('ten_crop',)\"."
            )
    return tuple(crop for crop in dict.fromkeys(crops) if crop != input_config.eval_crop)


def evaluate_protocols(
    p_eval, members, data, input_config, mesh, batch_size: int, extra_crops=()
) -> dict:
    """`evaluate` with `input_config.eval_crop` (keys val_*), and with each of `extra_crops` (val_<crop>_*)."""
    metrics = evaluate(p_eval, members, data, input_config, mesh, batch_size)
    for crop in extra_crops:
        more = evaluate(
            p_eval,
            members,
            data,
            dataclasses.replace(input_config, eval_crop=crop),
            mesh,
            batch_size,
        )
        metrics.update({f"val_{crop}_{name[len('val_') :]}": value for name, value in more.items()})
    return metrics


def _log_protocols(prefix: str, metrics: dict, eval_crop: str, extra_crops) -> None:
    for crop, key in ((eval_crop, "val_"), *((crop, f"val_{crop}_") for crop in extra_crops)):
        logging.info(
            "%s (%s): loss %.4f  top-1 error %.4f  top-5 error %.4f  (%d examples)",
            prefix,
            crop,
            metrics[key + "loss"],
            metrics[key + "top1_error"],
            metrics[key + "top5_error"],
            metrics[key + "examples"],
        )


def _train_batches(data, input_config, mesh, batch_size: int, start_step: int) -> Iterator[dict]:
    """The global training batches from `start_step` on: this process's rows loaded by the host
    pipeline as uint8 crops, put on the mesh and normalized there (`pixels`), or (synthetic
    data) drawn there."""
    if isinstance(data.train, sources.SyntheticSource):
        return synthetic.train_batches(
            mesh,
            batch_size,
            input_config.image_size,
            data.num_classes,
            input_config.seed,
            start_step,
            input_config.half_precision,
        )
    rows = sharding.data_rows(mesh, batch_size)
    dataset = batching.train_dataset(
        data, input_config, batch_size, start_step, rows, normalized=False
    )
    return _on_devices(dataset, data, input_config, mesh, rows)


def _on_devices(dataset, data, input_config, mesh, rows) -> Iterator[dict]:
    """The host pipeline's uint8 batches as global arrays on the mesh, normalized there."""
    stats = data.color_stats
    finish = pixels.normalizer(mesh, stats.mean, stats.std, input_config.half_precision)
    return (
        finish(sharding.host_batch_to_global(b, mesh, rows)) for b in dataset.as_numpy_iterator()
    )


def _eval_batches(data, input_config, mesh, batch_size: int) -> Iterator[dict]:
    """The global batches of one pass over the evaluation split (see `_train_batches`)."""
    if isinstance(data.eval, sources.SyntheticSource):
        return synthetic.eval_batches(
            mesh,
            batch_size,
            input_config.image_size,
            len(data.eval),
            data.num_classes,
            input_config.seed,
            input_config.eval_crop == "ten_crop",
            input_config.half_precision,
        )
    rows = sharding.data_rows(mesh, batch_size)
    dataset, _ = batching.eval_dataset(data, input_config, batch_size, rows=rows, normalized=False)
    return _on_devices(dataset, data, input_config, mesh, rows)


def evaluate(p_eval, members, data, input_config, mesh, batch_size: int) -> dict:
    """Exact metrics over the whole evaluation split (every example counted once)."""
    totals = None
    for batch in _eval_batches(data, input_config, mesh, batch_size):
        sums = p_eval(members, batch)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals["count"])
    return {
        "val_loss": float(totals["loss_sum"]) / count,
        "val_top1_error": 1.0 - float(totals["top1_correct"]) / count,
        "val_top5_error": 1.0 - float(totals["top5_correct"]) / count,
        "val_examples": count,
    }


# ---------------------------------------------------------------------------
# The loop


class _StopRequests:
    """Records SIGTERM/SIGINT while training runs; the loop stops after the current step."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame):
        if self.signal_name is not None:  # a second signal: stop at once, the default way
            signal.signal(number, self._previous.get(number, signal.SIG_DFL))
            signal.raise_signal(number)
            return
        self.signal_name = signal.Signals(number).name
        logging.warning(
            "%s received: finishing the current step and writing a checkpoint (send it again to stop "
            "at once).",
            self.signal_name,
        )

    def requested(self, step: int, every: int = 10) -> bool:
        local = self.signal_name is not None
        if jax.process_count() == 1:
            return local
        if step % every:  # processes agree on the stop step without a collective every step
            return False
        from jax.experimental import multihost_utils  # every process stops at the same step

        return bool(np.any(multihost_utils.process_allgather(np.array(local))))

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)


# Step metrics logged as their mean over the steps since the previous log line (non-finite steps left out);
# the others are logged as of the last step.
WINDOW_MEANS = ("loss", "top1_error", "top5_error", "grad_norm")


class _StepMetrics:
    """The train steps' metrics on their way from the devices: checks for non-finite steps, the logging window.

    `add` queues a step's metrics and reads those of the steps before it,
    which have finished by then (the device is busy with the newest one), so
    a non-finite step is noticed one step later at most, without waiting for
    the device every step. Unless they are to be skipped, a non-finite step
    stops training with an error naming it.
    """

    def __init__(self, skipped: int, skip_nonfinite: bool, latest_checkpoint):
        self.skipped = skipped  # non-finite steps skipped so far
        self._skip_nonfinite = skip_nonfinite
        self._latest_checkpoint = latest_checkpoint  # () -> step of the last checkpoint, or None
        self._pending: list[tuple[int, dict]] = []
        self._sums: dict[str, float] = {}
        self._finite_steps = 0
        self._last: dict = {}

    def add(self, step: int, metrics: dict) -> None:
        self._pending.append((step, metrics))
        if len(self._pending) > 1:
            self._read(self._pending[:-1], current_step=step)
            del self._pending[:-1]

    def check(self, step: int) -> None:
        """Reads every pending step (waiting for the device); raises TrainingError on a non-finite one."""
        self._read(self._pending, current_step=step)
        self._pending.clear()

    def _read(self, pending, current_step: int) -> None:
        for step, metrics in jax.device_get(pending):
            self._last = metrics
            if metrics["finite"]:
                self._finite_steps += 1
                for name in WINDOW_MEANS:
                    self._sums[name] = self._sums.get(name, 0.0) + float(metrics[name])
            elif not self._skip_nonfinite:
                latest = self._latest_checkpoint()
                kept = (
                    f"the last checkpoint, of step {latest}, is intact and a rerun resumes from it"
                    if latest is not None
                    else "no checkpoint was written yet"
                )
                raise TrainingError(
                    f"Non-finite loss or gradient at step {step} (loss {float(metrics['loss'])}), the first such step. "
                    f"Training stopped at step {current_step} without saving any state after the bad step: {kept}. Lower "
                    "--config.learning_rate, or set --config.skip_nonfinite_steps=True to skip such batches."
                )
            else:
                self.skipped += 1

    def window_means(self) -> dict[str, float]:
        """The logging window's record (after `check`): means of WINDOW_MEANS, the rest of the last step; then a new
        window. A window of skipped steps only has the last step's (non-finite) values."""
        record = {name: float(value) for name, value in self._last.items() if name != "finite"}
        if self._finite_steps:
            record.update({name: total / self._finite_steps for name, total in self._sums.items()})
        self._sums, self._finite_steps = {}, 0
        return record


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the last metrics.

    Raises Preempted (after checkpointing) on SIGTERM/SIGINT, TrainingError on
    a non-finite step, WorkdirError for an unusable workdir, CheckpointError
    when existing checkpoints cannot be used.
    """
    distributed.everywhere(lambda: rundir.prepare(workdir))
    distributed.check_shared_directory(workdir)  # every process writes checkpoint shards there
    lock = rundir.WorkdirLock(workdir)
    # one lock per run; the others stop too if it is taken
    distributed.on_process_zero(lock.acquire)
    try:
        return _train_and_evaluate(config, workdir, _StopRequests())
    finally:
        lock.release()


class _Setup(NamedTuple):
    """What training and evaluation both derive from a config."""

    mesh: Any
    input_config: sources.InputConfig
    data: sources.Data
    total_steps: int
    steps_per_epoch: int
    model: AlexNet
    tx: optax.GradientTransformation
    abstract: TrainState  # unboxed shapes
    shardings: Any
    target: Any  # abstract state with shardings, for restoring
    eval_every: int  # steps between evaluations (0: after the last step only)
    checkpoint_every: int  # steps between checkpoints (besides evaluated steps)

    def model_check(self, directory: str, config):
        """`checkpoints.model_check` for this setup's parameter shapes and optimizer state."""
        return checkpoints.model_check(
            directory, config, param_shapes(self.abstract.params), state_structure(self.abstract)
        )


def _setup(config) -> _Setup:
    mesh = sharding.create_mesh(config.mesh_shape)
    if jax.process_count() > 1:
        hosts = distributed.process_hosts()
        logging.info("%s", distributed.describe_mesh(mesh, hosts))
        if not distributed.towers_share_host(mesh, hosts):
            logging.warning(
                "Some data shard's towers are on different hosts: their exchanges cross the network."
            )
    input_config = sources.InputConfig.from_config(config)
    # Process 0 prepares the dataset (once, on first use) before the others open it.
    data = distributed.process_zero_first(lambda: sources.load_data(input_config))
    if data.num_classes != config.num_classes:
        raise sources.DataError(
            f"{config.dataset} has {data.num_classes} classes but config.num_classes is {config.num_classes}; "
            f"set --config.num_classes={data.num_classes}."
        )
    # refuses, before any work, a batch or layout the processes cannot split
    sharding.data_rows(mesh, config.batch_size)
    total_steps, steps_per_epoch = num_train_steps(config, len(data.train))
    model = create_model(config, mesh)
    tx = create_optimizer(config, steps_per_epoch, total_steps)
    abstract, shardings, _ = state_shardings(model, tx, mesh, config.image_size, config.seed)
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return _Setup(
        mesh,
        input_config,
        data,
        total_steps,
        steps_per_epoch,
        model,
        tx,
        abstract,
        shardings,
        target,
        eval_every=interval_steps(config, "eval_every", steps_per_epoch),
        checkpoint_every=interval_steps(config, "checkpoint_every", steps_per_epoch),
    )


class _Start(NamedTuple):
    """Where training starts: a fresh or restored state, the plateau schedule, the skip count."""

    state: TrainState
    plateau: optim.PlateauSchedule
    skipped: int  # non-finite steps skipped so far (skip_nonfinite_steps)


def _start(config, setup: _Setup, checkpointer, writer: rundir.MetricsWriter) -> _Start:
    """The latest readable checkpoint of the run (checkpoints.resume), or a fresh state (He init, or
    `init_from`); metrics.jsonl loses what a killed run logged after that point."""
    plateau = optim.PlateauSchedule(patience=config.plateau_patience, max_drops=config.max_lr_drops)
    init_from = config.get("init_from", "")
    resumed = checkpoints.resume(
        checkpointer, setup.target, setup.model_check(checkpointer.directory, config)
    )
    if resumed is not None:
        if init_from:
            logging.info(
                "init_from=%s is not used: the run resumes from its own checkpoints", init_from
            )
        step, state, metadata = resumed
        plateau.load_state_dict(metadata["plateau"])
        writer.truncate_after(step)
        logging.info("resumed from the checkpoint at step %d of %d", step, setup.total_steps)
        return _Start(state, plateau, int(metadata.get("skipped_steps", 0)))
    state = create_train_state(setup.model, setup.tx, setup.mesh, config.image_size, config.seed)
    if init_from:
        state = pretrained.init_state(config, setup.model, state)
    elif parameter_groups(config) is not None:
        logging.warning(
            "freeze / linear_probe / backbone_lr_scale are set but init_from is not: the frozen or "
            "slower layers start from random weights. Set --config.init_from=PATH to fine-tune."
        )
    # a run killed before its first checkpoint logged steps that will come again
    writer.truncate_after(0)
    logging.info(
        "starting %s: %d steps (%d per epoch), mesh %s",
        f"from {init_from}" if init_from else "from scratch",
        setup.total_steps,
        setup.steps_per_epoch,
        dict(setup.mesh.shape),
    )
    return _Start(state, plateau, 0)


def _with_lr_scale(state: TrainState, scale: float, mesh) -> TrainState:
    """`state` whose optimizer multiplies the learning rate by `scale` (the plateau schedule's)."""
    hyper = dict(state.opt_state.hyperparams)
    hyper["learning_rate_scale"] = sharding.put_replicated(
        np.asarray(scale, hyper["learning_rate_scale"].dtype), mesh
    )
    return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


def _checkpoint_metadata(config, setup: _Setup, step: int, plateau, skipped: int) -> dict:
    """What a checkpoint records beside the state: the schedule, and what resume checks (model_check)."""
    return {
        "plateau": plateau.state_dict(),
        "step": step,
        "skipped_steps": skipped,
        "model": f"model={config.model} towers={config.towers} num_classes={config.num_classes}",
        "param_shapes": param_shapes(setup.abstract.params),
        "opt_state_structure": state_structure(setup.abstract),
    }


class _Due(NamedTuple):
    """What a step is followed by."""

    log: bool
    eval: bool
    checkpoint: bool
    stop: bool  # a stop was requested (SIGTERM/SIGINT here or on a peer)
    last: bool

    @classmethod
    def after(cls, step: int, config, setup: _Setup, stop: _StopRequests) -> _Due:
        last = step == setup.total_steps
        # stop.requested is a collective every few steps: every process asks at every step.
        stop_now = not last and stop.requested(step)
        eval_now = last or (setup.eval_every > 0 and step % setup.eval_every == 0)
        # Evaluated steps are checkpointed too, so the best one by validation error can be kept.
        every = setup.checkpoint_every
        checkpoint_now = eval_now or (every > 0 and step % every == 0)
        log_now = last or step % config.log_every_steps == 0
        return cls(log_now, eval_now, checkpoint_now, stop_now, last)


class _Progress:
    """The progress line and its metrics.jsonl record: window means, images/s, step time, the
    share of it spent waiting for input, ETA.

    Steps run asynchronously: the host asks for the next batch while the devices still compute.
    Time spent in that request is time the host pipeline was behind; when it is a large share of
    the step time, the run is input-bound (faster input, more cores, or a prepared copy help, not a
    faster model).
    """

    def __init__(self, config, setup: _Setup, writer: rundir.MetricsWriter, start_step: int):
        self._batch_size, self._total, self._per_epoch = (
            config.batch_size,
            setup.total_steps,
            setup.steps_per_epoch,
        )
        self._writer = writer
        self._time, self._step, self._input_seconds = time.perf_counter(), start_step, 0.0

    def next_batch(self, batches: Iterator[dict]) -> dict:
        """next(batches), its time counted as waiting for input."""
        start = time.perf_counter()
        batch = next(batches)
        self._input_seconds += time.perf_counter() - start
        return batch

    def log(self, step: int, step_metrics: _StepMetrics) -> dict:
        """Writes and logs the window since the last call (after `step_metrics.check`); returns its record."""
        seconds = max(time.perf_counter() - self._time, 1e-9)
        steps = max(step - self._step, 1)
        images_per_second = (step - self._step) * self._batch_size / seconds
        eta = (self._total - step) * seconds / steps
        input_fraction = min(self._input_seconds / seconds, 1.0)
        record = step_metrics.window_means()
        record.update(
            images_per_second=images_per_second,
            step_seconds=seconds / steps,
            input_wait_seconds=self._input_seconds / steps,
            input_wait_fraction=input_fraction,
            epoch=step / self._per_epoch,
            skipped_steps=step_metrics.skipped,
        )
        self._time, self._step, self._input_seconds = time.perf_counter(), step, 0.0
        self._writer.write(step, record)
        logging.info(
            "step %d/%d  epoch %.2f  loss %.4f  top-1 err %.3f  lr %.2e  %.0f images/s  "
            "%.0f ms/step (input %.0f%%)  ETA %s",
            step,
            self._total,
            step / self._per_epoch,
            record["loss"],
            record["top1_error"],
            record["learning_rate"],
            images_per_second,
            1e3 * seconds / steps,
            100 * input_fraction,
            _format_seconds(eta),
        )
        return record


def _train_and_evaluate(config, workdir: str, stop: _StopRequests) -> dict:
    setup = _setup(config)
    mesh, data, input_config = setup.mesh, setup.data, setup.input_config
    p_train, p_eval = compile_steps(
        setup.model, setup.tx, mesh, setup.shardings, float(config.get("label_smoothing", 0.0))
    )
    extra_crops = final_eval_crops(config, input_config)
    writer = rundir.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    if jax.process_index() == 0:
        rundir.write_run_info(workdir, config, data.class_names, data.color_stats)
    checkpointer = checkpoints.Checkpointer(
        os.path.join(workdir, rundir.CHECKPOINT_SUBDIR), max_to_keep=config.keep_checkpoints
    )
    try:  # closing the checkpointer finishes pending writes, also when training stops on an error
        state, plateau, skipped = _start(config, setup, checkpointer, writer)
        state = _with_lr_scale(state, plateau.scale, mesh)
        start_step = int(jax.device_get(state.step))
        dropout_key = sharding.put_replicated(jax.random.key(config.seed + 1), mesh)
        batches = _train_batches(data, input_config, mesh, config.batch_size, start_step)
        step_metrics = _StepMetrics(skipped, config.skip_nonfinite_steps, checkpointer.latest_step)
        progress = _Progress(config, setup, writer, start_step)
        last_metrics: dict = {}
        with stop:  # SIGTERM/SIGINT from here on: finish the step, checkpoint, exit 75
            for step in range(start_step + 1, setup.total_steps + 1):
                state, metrics = p_train(state, progress.next_batch(batches), dropout_key)
                step_metrics.add(step, metrics)
                due = _Due.after(step, config, setup, stop)
                if not (due.log or due.eval or due.checkpoint or due.stop):
                    continue
                step_metrics.check(step)
                if due.log:
                    last_metrics.update(progress.log(step, step_metrics))
                eval_metrics = None
                if due.eval:
                    # the final evaluation: every protocol asked for
                    extra = extra_crops if due.last else ()
                    eval_metrics = evaluate_protocols(
                        p_eval,
                        ((state.params, state.batch_stats),),
                        data,
                        input_config,
                        mesh,
                        config.batch_size,
                        extra,
                    )
                    if config.schedule == "plateau" and plateau.update(
                        eval_metrics["val_top1_error"]
                    ):
                        logging.info(
                            "validation error stopped improving: learning rate x%.0e (drop %d)",
                            plateau.scale,
                            plateau.drops,
                        )
                        state = _with_lr_scale(state, plateau.scale, mesh)
                    writer.write(step, {**eval_metrics, "lr_scale": plateau.scale})
                    _log_protocols(
                        f"eval at step {step}", eval_metrics, input_config.eval_crop, extra
                    )
                    last_metrics.update(eval_metrics)
                if due.checkpoint or due.stop:
                    metadata = _checkpoint_metadata(
                        config, setup, step, plateau, step_metrics.skipped
                    )
                    checkpointer.save(step, state, metadata, metrics=eval_metrics)
                if due.stop:
                    checkpointer.wait()
                    raise Preempted(
                        f"Stopped by {stop.signal_name or 'a peer process'} after step {step} of "
                        f"{setup.total_steps}; a checkpoint was written. Rerun the same command to "
                        "continue from there."
                    )
    finally:
        checkpointer.close()
    return last_metrics


def evaluate_checkpoints(
    config, workdir: str, steps: Sequence[int] = (), other_workdirs: Sequence[str] = ()
) -> dict:
    """Evaluates the latest checkpoint of `workdir`, or an ensemble: softmax outputs averaged over its `steps` and
    the latest checkpoint of each of `other_workdirs`.

    The paper's "5 CNNs" were separately trained networks: train them in several workdirs (another seed each,
    --config.seed) and pass the others as `other_workdirs`. Checkpoints of one run (`steps`) make a cheaper,
    weaker ensemble. Every member must be the model of `config`. Each protocol of `final_eval_crops` is reported
    too.
    """
    setup = _setup(config)
    mesh, input_config, data = setup.mesh, setup.input_config, setup.data
    own = [(workdir, step) for step in steps] or [(workdir, None)]
    members, described, own_steps = [], [], []
    for directory, step in own + [(other, None) for other in other_workdirs]:
        if not os.path.isdir(os.path.join(directory, rundir.CHECKPOINT_SUBDIR)):
            raise MissingFileError(
                f"No checkpoints in {directory}; train first (python main.py --workdir={directory})."
            )
        differences = rundir.config_differences(directory, config, NETWORK_KEYS)
        if differences:
            raise checkpoints.CheckpointMismatchError(
                f"{directory} holds another network than this config builds ({'; '.join(differences)}); an ensemble's "
                "members must be runs of the same model: pass the config that trained them."
            )
        with checkpoints.Checkpointer(
            os.path.join(directory, rundir.CHECKPOINT_SUBDIR), async_save=False
        ) as checkpointer:
            step = checkpointer.latest_step() if step is None else step
            if step is None:
                raise MissingFileError(
                    f"No checkpoint in {directory}; train first (python main.py --workdir={directory})."
                )
            if step not in checkpointer.all_steps():
                raise MissingFileError(
                    f"No checkpoint for step {step} in {directory}; there are {checkpointer.all_steps()}."
                )
            setup.model_check(checkpointer.directory, config)(
                step, checkpointer.read_metadata(step)
            )
            state, _ = checkpointer.restore(setup.target, step)
        members.append((state.params, state.batch_stats))
        described.append(f"{directory}@{step}")
        if len(own_steps) < len(own):
            own_steps.append(step)
    _, p_eval = compile_steps(setup.model, setup.tx, mesh, setup.shardings)
    extra_crops = final_eval_crops(config, input_config)
    metrics = evaluate_protocols(
        p_eval, tuple(members), data, input_config, mesh, config.batch_size, extra_crops
    )
    _log_protocols(
        f"{len(members)} checkpoint(s) {', '.join(described)}",
        metrics,
        input_config.eval_crop,
        extra_crops,
    )
    return {**metrics, "steps": own_steps, "members": described}
