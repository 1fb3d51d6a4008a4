"""The train state and the pure step functions, built from a config: the core that runs on any JAX install.

`train_step(state, batch, dropout_key)` and `eval_step(members, batch)` are
pure and jitted with named shardings by `compile_steps`; `create_model`,
`create_optimizer` and `create_train_state` build what they need from a
config. Nothing here imports TensorFlow, tfds or matplotlib (a test checks),
so the steps run on accelerator images that have JAX only.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from alexnet_jax import optim, sharding
from alexnet_jax.config_values import config_items
from alexnet_jax.errors import ConfigError
from alexnet_jax.metrics import cross_entropy, model_variables, predict_probabilities, top_k_correct
from alexnet_jax.models import AlexNet, from_config, head_layer, loop_over_towers


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training. Arrays only, so it shards and checkpoints as one tree."""

    step: jax.Array  # int32 scalar: number of steps taken
    params: Any
    opt_state: Any
    batch_stats: Any  # batch-norm running statistics ({} without batch norm)


def create_model(config, mesh=None) -> AlexNet:
    """The configured AlexNet (`models.from_config`); with a mesh, towers go on its 'model' axis."""
    model = from_config(config)
    if mesh is None:
        return model
    towers, model_axis = model.resolved()["towers"], mesh.shape["model"]
    if model_axis not in (1, towers):
        raise sharding.MeshError(
            f"The mesh puts {model_axis} devices on 'model' but the model has {towers} tower(s): each tower "
            f"lives on one 'model' index. Use mesh_shape (-1, 1){' or (-1, %d)' % towers if towers > 1 else ''}."
        )
    if towers > 1:
        model = model.clone(
            tower_map=sharding.sharded_tower_map(mesh),
            merged_constraint=sharding.merged_constraint(mesh),
        )
    return model


def num_train_steps(config, num_train_examples: int) -> tuple[int, int]:
    """(total steps, steps per epoch): `num_train_steps` when > 0, else `num_epochs` epochs."""
    steps_per_epoch = max(1, num_train_examples // config.batch_size)
    if config.num_train_steps > 0:
        return int(config.num_train_steps), steps_per_epoch
    return int(math.ceil(config.num_epochs * steps_per_epoch)), steps_per_epoch


def interval_steps(config, name: str, steps_per_epoch: int) -> int:
    """The interval `name` (e.g. "eval_every") in steps: `<name>_steps`, or `<name>_epochs` epochs
    rounded to whole steps (at least 1); 0 when neither is positive (then only after the last step).

    A config sets at most one of the two, so a duration keeps its meaning when the batch size
    changes (big_vision's `u.steps`). A config without `<name>_epochs` (older runs) uses steps.
    """
    every_steps = int(config.get(f"{name}_steps", 0))
    every_epochs = float(config.get(f"{name}_epochs", 0.0))
    if every_steps > 0 and every_epochs > 0:
        raise ConfigError(
            f"{name}_steps={every_steps} and {name}_epochs={every_epochs} are both set; set the "
            f"other to 0, e.g. --config.{name}_epochs=0 --config.{name}_steps={every_steps}."
        )
    if every_steps > 0:
        return every_steps
    if every_epochs > 0:
        return max(1, round(every_epochs * steps_per_epoch))
    return 0


def create_optimizer(
    config, steps_per_epoch: int, total_steps: int
) -> optax.GradientTransformation:
    """The config's optimizer and schedule; a config without `weight_decay_on` (older than the option) decays every
    parameter, as runs did then."""
    schedule = optim.make_schedule(
        config.schedule,
        config.learning_rate,
        steps_per_epoch,
        total_steps,
        warmup_epochs=config.warmup_epochs,
        step_epochs=tuple(config.step_epochs),
    )
    return optim.create_optimizer(
        config.optimizer,
        schedule,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        groups=parameter_groups(config),
        backbone_lr_scale=config.get("backbone_lr_scale", 1.0),
        weight_decay_on=config.get("weight_decay_on", "all"),
    )


def layer_list(config, field: str) -> tuple[str, ...]:
    """The layer names of a config field, e.g. ("conv1", "conv2"), in order; () when unset."""
    return tuple(str(name) for name in config_items(config.get(field, ())))


def parameter_groups(config):
    """None when everything trains at one rate; else params -> 'train'/'backbone'/'frozen' per leaf.

    `freeze` lists frozen layers; `linear_probe` freezes all but the
    classifier head; `backbone_lr_scale` != 1 trains every unfrozen layer but
    the head at that fraction of the rate.
    """
    frozen, probe = layer_list(config, "freeze"), bool(config.get("linear_probe", False))
    scale = float(config.get("backbone_lr_scale", 1.0))
    if not (frozen or probe or scale != 1.0):
        return None
    if probe and frozen:
        raise ConfigError(
            f"linear_probe=True already freezes every layer but the head; drop freeze={config.freeze!r}."
        )
    if scale <= 0:
        raise ConfigError(
            f"backbone_lr_scale must be > 0 (freeze layers to stop them), got {scale}."
        )

    def groups(params):
        head = head_layer(params)
        layers = {optim.layer_of(name) for name in params}
        return optim.parameter_groups(
            params, sorted(layers - {head}) if probe else frozen, (head,), scale
        )

    return groups


def train_step(
    state: TrainState,
    batch: dict,
    dropout_key: jax.Array,
    *,
    model: AlexNet,
    tx,
    label_smoothing: float = 0.0,
) -> tuple[TrainState, dict]:
    """One SGD step. A step with a non-finite loss or gradient keeps the weights, the optimizer's moments and the
    batch statistics; its step and learning-rate schedule still advance.

    batch: image (B, S, S, 3), label (B,). Dropout randomness is
    `fold_in(dropout_key, step)`, so a resumed run repeats it exactly. The
    loss is trained with `label_smoothing` (see `cross_entropy`) and reported
    as it is optimised.
    """
    rng = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
        logits, updates = model.apply(
            model_variables(params, state.batch_stats),
            batch["image"],
            train=True,
            rngs={"dropout": rng},
            mutable=["batch_stats"],
        )
        return cross_entropy(logits, batch["label"], label_smoothing).mean(), (
            logits,
            updates.get("batch_stats", {}),
        )

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def update(state):
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return state.replace(
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            batch_stats=batch_stats,
        )

    def skip(state):
        # The schedules' counts (inject_hyperparams' own, and each scheduled hyperparameter's) advance with the
        # step, so skipped steps do not delay the schedule: one count for the step, the data, dropout and the
        # learning rate. The optimizer's inner state (momentum, Adam's moments and count) stays as it was.
        opt_state = state.opt_state
        return state.replace(
            opt_state=opt_state._replace(
                count=optax.safe_increment(opt_state.count),
                hyperparams_states=jax.tree.map(optax.safe_increment, opt_state.hyperparams_states),
            )
        )

    # Keep the last good weights, momentum and statistics on a non-finite step; the loop stops (or skips) on
    # it. A cond, not a `where(finite, new, old)` over the state: XLA:CPU fused that select into two passes
    # over every weight and its momentum: about 1 s of op time per step, mostly fc6 and fc7 (docs/performance.md).
    new_state = lax.cond(finite, update, skip, state).replace(step=state.step + 1)
    hyper = new_state.opt_state.hyperparams
    metrics = {
        "loss": loss,
        "top1_error": 1.0 - top_k_correct(logits, batch["label"], 1).mean(),
        "top5_error": 1.0 - top_k_correct(logits, batch["label"], min(5, logits.shape[-1])).mean(),
        "grad_norm": grad_norm,
        "learning_rate": hyper["learning_rate"] * hyper["learning_rate_scale"],
        "finite": finite,
    }
    return new_state, metrics


def eval_step(members, batch: dict, *, model: AlexNet) -> dict:
    """Sums over the real (mask=True) examples of a batch: loss, top-1/top-5 correct, count."""
    probabilities = predict_probabilities(model, members, batch["image"])
    mask = batch["mask"].astype(jnp.float32)
    label_probability = jnp.take_along_axis(probabilities, batch["label"][:, None], axis=-1)[:, 0]
    k = min(5, probabilities.shape[-1])
    return {
        "loss_sum": jnp.sum(-jnp.log(jnp.maximum(label_probability, 1e-12)) * mask),
        "top1_correct": jnp.sum(top_k_correct(probabilities, batch["label"], 1) * mask),
        "top5_correct": jnp.sum(top_k_correct(probabilities, batch["label"], k) * mask),
        "count": jnp.sum(mask),
    }


def init_state(key, model, tx, image_size: int) -> TrainState:
    # Initialised on one example: through the plain (unsharded) tower map; the
    # caller's out_shardings place the result.
    model = model.clone(tower_map=loop_over_towers, merged_constraint=None)
    variables = model.init(
        {"params": key, "dropout": key}, jnp.zeros((1, image_size, image_size, 3)), train=False
    )
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        batch_stats=variables.get("batch_stats", {}),
    )


def state_shardings(model, tx, mesh, image_size: int, seed: int):
    """(abstract unboxed TrainState, its NamedShardings): towers on 'model', the rest replicated."""
    init = functools.partial(init_state, model=model, tx=tx, image_size=image_size)
    boxed = jax.eval_shape(init, jax.random.key(seed))
    shardings = sharding.logical_shardings(mesh, boxed)
    return nn.unbox(boxed), shardings, init


def create_train_state(model, tx, mesh, image_size: int, seed: int) -> TrainState:
    """A fresh state, initialised directly with its shardings (never whole on one device)."""
    _, shardings, init = state_shardings(model, tx, mesh, image_size, seed)
    return jax.jit(lambda key: nn.unbox(init(key)), out_shardings=shardings)(jax.random.key(seed))


# XLA:CPU hands convolutions, dots and reductions to YNNPACK by default. Its convolutions, above all
# their kernel gradients, made the train step 1.5-2x slower than XLA's own (Eigen)
# convolutions, so on CPU the steps keep YNNPACK for dots only (docs/performance.md).
CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}


def compiler_options(mesh) -> dict | None:
    """XLA options for the steps compiled for `mesh`: `CPU_COMPILER_OPTIONS` on CPU, none elsewhere."""
    return dict(CPU_COMPILER_OPTIONS) if mesh.devices.flat[0].platform == "cpu" else None


def compile_steps(model, tx, mesh, shardings, label_smoothing: float = 0.0):
    """The jitted train and eval steps with their input/output shardings."""
    batch = sharding.batch_sharding(mesh)
    replicated = sharding.replicated(mesh)
    options = compiler_options(mesh)
    p_train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, label_smoothing=label_smoothing),
        in_shardings=(shardings, batch, replicated),
        out_shardings=(shardings, replicated),
        donate_argnums=(0,),
        compiler_options=options,
    )
    p_eval = jax.jit(
        functools.partial(eval_step, model=model),
        out_shardings=replicated,
        compiler_options=options,
    )
    return p_train, p_eval


def param_shapes(params) -> dict[str, list[int]]:
    """{'conv1/kernel': [2, 11, 11, 3, 48], ...}: what a checkpoint must match to be resumed."""
    flat = flax.traverse_util.flatten_dict(params, sep="/")
    return {name: list(leaf.shape) for name, leaf in sorted(flat.items())}


def state_structure(abstract_state) -> str:
    """The train state's tree structure (optimizer state included), to refuse checkpoints of another setup."""
    return str(jax.tree.structure(abstract_state.opt_state))
