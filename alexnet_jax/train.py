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
import json
import os
import signal
import socket
import threading
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from alexnet_jax import checkpoints, distributed, input_pipeline, optim, pretrained, sharding
from alexnet_jax.models import AlexNet
from alexnet_jax.steps import (
    TrainState, compile_steps, create_model, create_optimizer, create_train_state, layer_list, num_train_steps, param_shapes, parameter_groups, state_shardings, state_structure,
)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and what to do."""


class Preempted(Exception):
    """SIGTERM/SIGINT arrived: the current step finished and a checkpoint was written."""


PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: rerun the same command to continue


# ---------------------------------------------------------------------------
# Logging


class MetricsWriter:
    """`<workdir>/metrics.jsonl` (one JSON object per event) and TensorBoard events; process 0 only."""

    def __init__(self, workdir: str, enabled: bool):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tensorboard = None
        if enabled:
            import tensorflow as tf

            self._tf = tf
            self._tensorboard = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

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
        record = {"step": int(step), **{k: float(v) if not isinstance(v, str) else v for k, v in metrics.items()}}
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")
        with self._tensorboard.as_default(step=int(step)):
            for name, value in record.items():
                if name != "step" and not isinstance(value, str):
                    self._tf.summary.scalar(name, value)
        self._tensorboard.flush()


def _init_from(config, model, state: TrainState) -> TrainState:
    """`state` with the pretrained parameters of `config.init_from` (a head of another class count stays fresh)."""
    towers = model.resolved()["towers"]
    merged = distributed.everywhere(
        lambda: pretrained.load_pretrained(config.init_from, config.model, towers, state.params,
                                           layer_list(config, "reinit_layers"))
    )
    put = lambda host, like: sharding.put_global(host.astype(like.dtype), like.sharding)  # noqa: E731
    return state.replace(params=pretrained.replace_params(state.params, merged, put))


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------
# Evaluation


def final_eval_crops(config, input_config) -> tuple[str, ...]:
    """The protocols evaluated after the last step besides `eval_crop` (config.final_eval_crops), checked."""
    crops = tuple(config.get("final_eval_crops", ()))
    for crop in crops:
        if crop not in input_pipeline.EVAL_CROPS:
            raise input_pipeline.DataError(
                f"final_eval_crops={crops!r} has {crop!r}; use crops among {input_pipeline.EVAL_CROPS}, "
                "e.g. --config.final_eval_crops=\"('ten_crop',)\"."
            )
    return tuple(crop for crop in dict.fromkeys(crops) if crop != input_config.eval_crop)


def evaluate_protocols(p_eval, members, data, input_config, mesh, batch_size: int, extra_crops=()) -> dict:
    """`evaluate` with `input_config.eval_crop` (keys val_*), and with each of `extra_crops` (val_<crop>_*)."""
    metrics = evaluate(p_eval, members, data, input_config, mesh, batch_size)
    for crop in extra_crops:
        more = evaluate(p_eval, members, data, dataclasses.replace(input_config, eval_crop=crop), mesh, batch_size)
        metrics.update({f"val_{crop}_{name[len('val_'):]}": value for name, value in more.items()})
    return metrics


def _log_protocols(prefix: str, metrics: dict, eval_crop: str, extra_crops) -> None:
    for crop, key in ((eval_crop, "val_"), *((crop, f"val_{crop}_") for crop in extra_crops)):
        logging.info("%s (%s): loss %.4f  top-1 error %.4f  top-5 error %.4f  (%d examples)", prefix, crop,
                     metrics[key + "loss"], metrics[key + "top1_error"], metrics[key + "top5_error"],
                     metrics[key + "examples"])


def evaluate(p_eval, members, data, input_config, mesh, batch_size: int) -> dict:
    """Exact metrics over the whole evaluation split (every example counted once)."""
    rows = sharding.data_rows(mesh, batch_size)
    dataset, num_batches = input_pipeline.eval_dataset(data, input_config, batch_size, rows=rows)
    totals = None
    for host_batch in dataset.as_numpy_iterator():
        sums = p_eval(members, sharding.host_batch_to_global(host_batch, mesh, rows))
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


# The config fields that define the network a checkpoint holds (beyond its parameter shapes).
MODEL_FIELDS = ("model", "towers", "num_classes", "normalization", "norm_position", "pooling", "activation",
                "conv_features", "hidden_features", "residual")


def config_differences(workdir: str, config, fields: Sequence[str] | None = None) -> list[str]:
    """'field: X in <workdir>/config.json, Y here' for each of `fields` (default: all) that differs; [] without
    a config.json."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return []
    with open(path) as file:
        saved = json.load(file)
    current = json.loads(config.to_json_best_effort())
    names = sorted(set(saved) | set(current)) if fields is None else fields
    return [f"{name}: {saved.get(name)!r} in {path}, {current.get(name)!r} here" for name in names
            if saved.get(name) != current.get(name)]


def _save_run_info(workdir: str, config, data) -> None:
    """config.json and data.json: what predict and notebooks need to rebuild the model and preprocessing.

    A config.json of an earlier run in the workdir that differs from `config` is reported (a resumed run
    continues with the new values) before it is replaced.
    """
    if jax.process_index() != 0:
        return
    changed = config_differences(workdir, config)
    if changed:
        logging.warning("This config differs from the one an earlier run wrote in %s; a resumed run keeps its "
                        "weights and optimizer state and goes on with the new values: %s", workdir, "; ".join(changed))
    with open(os.path.join(workdir, "config.json"), "w") as file:
        file.write(config.to_json_best_effort(indent=2))
    info = {"class_names": list(data.class_names), "color_stats": {
        "mean": data.color_stats.mean, "std": data.color_stats.std,
        "eigval": data.color_stats.eigval, "eigvec": data.color_stats.eigvec}}
    with open(os.path.join(workdir, "data.json"), "w") as file:
        json.dump(info, file, indent=2)


def _check_same_model(expected: dict, directory: str, config, structure: str | None = None):
    def check(step, metadata):
        if structure is not None and metadata.get("opt_state_structure") not in (None, structure):
            raise checkpoints.CheckpointMismatchError(
                f"The checkpoint at step {step} in {directory} holds the state of another optimizer setup "
                f"(optimizer, schedule or parameter groups changed since it was written; this config: "
                f"optimizer={config.optimizer!r}, schedule={config.schedule!r}, freeze={config.get('freeze', '')!r}, "
                f"linear_probe={config.get('linear_probe', False)}, backbone_lr_scale={config.get('backbone_lr_scale', 1.0)}). "
                "Use the settings that wrote it (see its config.json), or a new --workdir."
            )
        saved = metadata.get("param_shapes")
        if saved is None or saved == expected:
            return
        differences = [
            f"{name}: checkpoint {saved.get(name)} vs config {expected.get(name)}"
            for name in sorted(set(saved) | set(expected))
            if saved.get(name) != expected.get(name)
        ]
        raise checkpoints.CheckpointMismatchError(
            f"The checkpoint at step {step} in {directory} was written by a different model "
            f"({metadata.get('model', 'unknown')}); this config builds model={config.model!r}, "
            f"towers={config.towers}, num_classes={config.num_classes}. Differences: {'; '.join(differences[:4])}. "
            "Use the config that wrote it, or a new --workdir."
        )

    return check


def _prepare_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test_{socket.gethostname()}_{os.getpid()}")
        with open(probe, "w") as file:
            file.write("")
        os.remove(probe)
    except OSError as error:
        raise TrainingError(
            f"Cannot write to the workdir {workdir!r} ({type(error).__name__}: {error.strerror or error}). "
            "Choose a writable --workdir."
        ) from None


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
        logging.warning("%s received: finishing the current step and writing a checkpoint (send it again to stop "
                        "at once).", self.signal_name)

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
                kept = (f"the last checkpoint, of step {latest}, is intact and a rerun resumes from it"
                        if latest is not None else "no checkpoint was written yet")
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
    a non-finite step or an unusable workdir, CheckpointError when existing
    checkpoints cannot be used.
    """
    distributed.everywhere(lambda: _prepare_workdir(workdir))
    distributed.check_shared_directory(workdir)  # every process writes checkpoint shards there
    lock = checkpoints.WorkdirLock(workdir)
    distributed.on_process_zero(lock.acquire)  # one lock per run; the others stop too if it is taken
    try:
        return _train_and_evaluate(config, workdir, _StopRequests())
    finally:
        lock.release()


class _Setup(NamedTuple):
    """What training and evaluation both derive from a config."""

    mesh: Any
    input_config: input_pipeline.InputConfig
    data: input_pipeline.Data
    total_steps: int
    steps_per_epoch: int
    model: AlexNet
    tx: optax.GradientTransformation
    abstract: TrainState  # unboxed shapes
    shardings: Any
    target: Any  # abstract state with shardings, for restoring


def _setup(config) -> _Setup:
    mesh = sharding.create_mesh(config.mesh_shape)
    if jax.process_count() > 1:
        hosts = distributed.process_hosts()
        logging.info("%s", distributed.describe_mesh(mesh, hosts))
        if not distributed.towers_share_host(mesh, hosts):
            logging.warning("Some data shard's towers are on different hosts: their exchanges cross the network.")
    input_config = input_pipeline.InputConfig.from_config(config)
    # Process 0 prepares the dataset (once, on first use) before the others open it.
    data = distributed.process_zero_first(lambda: input_pipeline.load_data(input_config))
    if data.num_classes != config.num_classes:
        raise input_pipeline.DataError(
            f"{config.dataset} has {data.num_classes} classes but config.num_classes is {config.num_classes}; "
            f"set --config.num_classes={data.num_classes}."
        )
    sharding.data_rows(mesh, config.batch_size)  # refuses, before any work, a batch or layout the processes cannot split
    total_steps, steps_per_epoch = num_train_steps(config, len(data.train))
    model = create_model(config, mesh)
    tx = create_optimizer(config, steps_per_epoch, total_steps)
    abstract, shardings, _ = state_shardings(model, tx, mesh, config.image_size, config.seed)
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return _Setup(mesh, input_config, data, total_steps, steps_per_epoch, model, tx, abstract, shardings, target)


def _train_and_evaluate(config, workdir: str, stop: _StopRequests) -> dict:
    mesh, input_config, data, total_steps, steps_per_epoch, model, tx, abstract, shardings, target = _setup(config)
    p_train, p_eval = compile_steps(model, tx, mesh, shardings, float(config.get("label_smoothing", 0.0)))
    extra_crops = final_eval_crops(config, input_config)
    plateau = optim.PlateauSchedule(patience=config.plateau_patience, max_drops=config.max_lr_drops)
    writer = MetricsWriter(workdir, enabled=jax.process_index() == 0)
    _save_run_info(workdir, config, data)

    checkpointer = checkpoints.Checkpointer(
        os.path.join(workdir, checkpoints.CHECKPOINT_SUBDIR), max_to_keep=config.keep_checkpoints
    )
    expected_shapes = param_shapes(abstract.params)
    structure = state_structure(abstract)
    if checkpointer.latest_step() is None and checkpointer.damaged_steps():
        checkpointer.restore_latest_readable(None)  # raises CheckpointError: never restart silently over them
    skipped = 0  # non-finite steps skipped so far (skip_nonfinite_steps)
    if checkpointer.latest_step() is None:
        state = create_train_state(model, tx, mesh, config.image_size, config.seed)
        if config.get("init_from", ""):
            state = _init_from(config, model, state)
        elif parameter_groups(config) is not None:
            logging.warning("freeze / linear_probe / backbone_lr_scale are set but init_from is not: the frozen or "
                            "slower layers start from random weights. Set --config.init_from=PATH to fine-tune.")
        writer.truncate_after(0)  # a run killed before its first checkpoint logged steps that will come again
        logging.info("starting %s: %d steps (%d per epoch), mesh %s",
                     f"from {config.init_from}" if config.get("init_from", "") else "from scratch", total_steps,
                     steps_per_epoch, dict(mesh.shape))
    else:
        if config.get("init_from", ""):
            logging.info("init_from=%s is not used: the run resumes from its own checkpoints", config.init_from)
        latest, state, metadata = checkpointer.restore_latest_readable(
            target, check=_check_same_model(expected_shapes, checkpointer.directory, config, structure)
        )
        plateau.load_state_dict(metadata["plateau"])
        skipped = int(metadata.get("skipped_steps", 0))
        writer.truncate_after(latest)
        logging.info("resumed from the checkpoint at step %d of %d", latest, total_steps)
    model_description = f"model={config.model} towers={config.towers} num_classes={config.num_classes}"

    start_step = int(jax.device_get(state.step))
    dropout_key = sharding.put_replicated(jax.random.key(config.seed + 1), mesh)
    rows = sharding.data_rows(mesh, config.batch_size)  # this process's rows of every global batch
    batches = input_pipeline.train_dataset(data, input_config, config.batch_size, start_step=start_step, rows=rows)
    batches = batches.as_numpy_iterator()

    def set_lr_scale(state):
        hyper = dict(state.opt_state.hyperparams)
        hyper["learning_rate_scale"] = sharding.put_replicated(np.asarray(plateau.scale, hyper["learning_rate_scale"].dtype), mesh)
        return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))

    state = set_lr_scale(state)
    last_metrics: dict = {}
    step_metrics = _StepMetrics(skipped, config.skip_nonfinite_steps, checkpointer.latest_step)
    timer_start, timer_step = time.perf_counter(), start_step

    def metadata(step: int) -> dict:
        return {"plateau": plateau.state_dict(), "step": step, "model": model_description,
                "skipped_steps": step_metrics.skipped, "param_shapes": expected_shapes, "opt_state_structure": structure}

    try:
        with stop:  # SIGTERM/SIGINT from here on: finish the step, checkpoint, exit 75
            for step in range(start_step + 1, total_steps + 1):
                batch = sharding.host_batch_to_global(next(batches), mesh, rows)
                state, metrics = p_train(state, batch, dropout_key)
                step_metrics.add(step, metrics)
                is_last = step == total_steps
                stop_now = not is_last and stop.requested(step)
                log_now = step % config.log_every_steps == 0 or is_last
                eval_now = (config.eval_every_steps > 0 and step % config.eval_every_steps == 0) or is_last
                # Evaluated steps are checkpointed too, so the best one by validation error can be kept.
                checkpoint_now = (config.checkpoint_every_steps > 0 and step % config.checkpoint_every_steps == 0) or eval_now
                if not (log_now or eval_now or checkpoint_now or stop_now):
                    continue
                step_metrics.check(step)
                if log_now:
                    seconds = time.perf_counter() - timer_start
                    images_per_second = (step - timer_step) * config.batch_size / max(seconds, 1e-9)
                    eta = (total_steps - step) * seconds / max(step - timer_step, 1)
                    timer_start, timer_step = time.perf_counter(), step
                    record = step_metrics.window_means()
                    record.update(images_per_second=images_per_second, epoch=step / steps_per_epoch,
                                  skipped_steps=step_metrics.skipped)
                    writer.write(step, record)
                    logging.info(
                        "step %d/%d  epoch %.2f  loss %.4f  top-1 err %.3f  lr %.2e  %.0f images/s  ETA %s",
                        step, total_steps, step / steps_per_epoch, record["loss"], record["top1_error"],
                        record["learning_rate"], images_per_second, _format_seconds(eta),
                    )
                    last_metrics.update(record)
                eval_metrics = None
                if eval_now:
                    extra = extra_crops if is_last else ()  # the final evaluation: every protocol asked for
                    eval_metrics = evaluate_protocols(p_eval, ((state.params, state.batch_stats),), data, input_config,
                                                      mesh, config.batch_size, extra)
                    if config.schedule == "plateau" and plateau.update(eval_metrics["val_top1_error"]):
                        logging.info("validation error stopped improving: learning rate x%.0e (drop %d)", plateau.scale, plateau.drops)
                        state = set_lr_scale(state)
                    writer.write(step, {**eval_metrics, "lr_scale": plateau.scale})
                    _log_protocols(f"eval at step {step}", eval_metrics, input_config.eval_crop, extra)
                    last_metrics.update(eval_metrics)
                if checkpoint_now or stop_now:
                    checkpointer.save(step, state, metadata(step), metrics=eval_metrics)
                if stop_now:
                    checkpointer.wait()
                    raise Preempted(
                        f"Stopped by {stop.signal_name or 'a peer process'} after step {step} of {total_steps}; a checkpoint "
                        "was written. Rerun the same command to continue from there."
                    )
    finally:
        checkpointer.close()  # finishes pending writes, also when training stops on an error
    return last_metrics


def evaluate_checkpoints(config, workdir: str, steps: Sequence[int] = (), other_workdirs: Sequence[str] = ()) -> dict:
    """Evaluates the latest checkpoint of `workdir`, or an ensemble: softmax outputs averaged over its `steps` and
    the latest checkpoint of each of `other_workdirs`.

    The paper's "5 CNNs" were separately trained networks: train them in several workdirs (another seed each,
    --config.seed) and pass the others as `other_workdirs`. Checkpoints of one run (`steps`) make a cheaper,
    weaker ensemble. Every member must be the model of `config`. Each protocol of `final_eval_crops` is reported
    too.
    """
    mesh, input_config, data, _, _, model, tx, abstract, shardings, target = _setup(config)
    own = [(workdir, step) for step in steps] or [(workdir, None)]
    members, described, own_steps = [], [], []
    for directory, step in own + [(other, None) for other in other_workdirs]:
        if not os.path.isdir(os.path.join(directory, checkpoints.CHECKPOINT_SUBDIR)):
            raise FileNotFoundError(f"No checkpoints in {directory}; train first (python main.py --workdir={directory}).")
        differences = config_differences(directory, config, MODEL_FIELDS)
        if differences:
            raise checkpoints.CheckpointMismatchError(
                f"{directory} holds another network than this config builds ({'; '.join(differences)}); an ensemble's "
                "members must be runs of the same model: pass the config that trained them."
            )
        with checkpoints.Checkpointer(os.path.join(directory, checkpoints.CHECKPOINT_SUBDIR), async_save=False) as checkpointer:
            step = checkpointer.latest_step() if step is None else step
            if step is None:
                raise FileNotFoundError(f"No checkpoint in {directory}; train first (python main.py --workdir={directory}).")
            if step not in checkpointer.all_steps():
                raise FileNotFoundError(f"No checkpoint for step {step} in {directory}; there are {checkpointer.all_steps()}.")
            check = _check_same_model(param_shapes(abstract.params), checkpointer.directory, config, state_structure(abstract))
            check(step, checkpointer.read_metadata(step))
            state, _ = checkpointer.restore(target, step)
        members.append((state.params, state.batch_stats))
        described.append(f"{directory}@{step}")
        if len(own_steps) < len(own):
            own_steps.append(step)
    _, p_eval = compile_steps(model, tx, mesh, shardings)
    extra_crops = final_eval_crops(config, input_config)
    metrics = evaluate_protocols(p_eval, tuple(members), data, input_config, mesh, config.batch_size, extra_crops)
    _log_protocols(f"{len(members)} checkpoint(s) {', '.join(described)}", metrics, input_config.eval_crop, extra_crops)
    return {**metrics, "steps": own_steps, "members": described}
