"""Optimizers and learning-rate schedules: the paper's SGD rule and its relatives.

The paper's update (Krizhevsky et al. 2012, section 5), for every weight w
with gradient g of the batch loss:

    v <- momentum * v - weight_decay * lr * w - lr * g
    w <- w + v

with momentum 0.9, weight decay 5e-4 and lr 0.01, divided by 10 "when the
validation error stopped improving with the current learning rate", three
times in all. `paper_sgd` is this rule. The learning rate multiplies
*inside* the momentum buffer, so after a drop the buffer still carries steps
taken at the old rate. The common form, `optax.sgd(lr, momentum)` after
`optax.add_decayed_weights(weight_decay)`, accumulates raw gradients and
scales the whole buffer by the current rate: each drop then also shrinks all
the momentum at once. The two agree step for step until the rate first
changes (`create_optimizer('sgd', ...)` gives the common form).

Which parameters are decayed (`weight_decay_on`, one of `WEIGHT_DECAY_ON`):
the formula is written for every weight, but the code the paper ran did not
decay the biases. cuda-convnet builds every layer's biases with a weight cost
of 0 (`layer.cu`: `new Weights(hBiases, hBiasesInc, epsB, 0, momB, ...)`; the
`wc` of its layer-params files is the weights' cost), and Caffe's
`bvlc_alexnet/train_val.prototxt` gives every bias `decay_mult: 0` (and
`lr_mult: 2`, as cuda-convnet's files set `epsB` to twice `epsW`; that doubled
bias rate is not reproduced here). `'weights'` decays the conv and dense
kernels only (leaf name `'kernel'`); biases and batch-norm scale and offset
(`'bias'`, `'scale'`) get no decay. `'all'` decays every parameter, as the
formula reads and as torchvision's recipe does. It matters with the paper's
init: under `'all'` a bias of 1 with no gradient shrinks by
lr*wd/(1-m) = 0.01*5e-4/0.1 = 5e-5 per step, to about 0.61 after one ImageNet
epoch of 10,009 steps. The choice is static, made leaf by leaf inside the
decay term, so the optimizer state has the same structure under either
setting (and as before the option existed): checkpoints restore across it.

Every optimizer from `create_optimizer` is wrapped in
`optax.inject_hyperparams`, so the training loop can read and change its
hyperparameters between steps through `opt_state.hyperparams`:

- `'learning_rate'`: the rate. Overwriting it works only when the optimizer
  was built with a constant rate; with a schedule, optax recomputes it from the
  schedule at every step and silently ignores the overwrite.
- `'learning_rate_scale'` (1.0 at first): a multiplier on the rate, constant or
  scheduled. This is how the host-side `PlateauSchedule` applies its drops:
  `opt_state.hyperparams['learning_rate_scale'] = plateau.scale`; it composes
  with a warmup schedule.

Transfer learning (`parameter_groups`, the `groups` argument of
`create_optimizer`): every top-level layer is 'train' (the optimizer as
configured), 'backbone' (the same optimizer at `backbone_lr_scale` times the
rate) or 'frozen' (`optax.set_to_zero()`: its update is exactly zero, weight
decay included, and the optimizer keeps no state for it). The groups are
formed inside `optax.multi_transform`, under `inject_hyperparams`, so the
hyperparameters above stay where the loop finds them.

Schedules (`make_schedule`) are step -> rate functions: `'constant'`, `'step'`
(multiply by `step_factor` at fixed epochs), `'cosine'` (to 0 at the last
step) and `'plateau'` (the constant base rate; `PlateauSchedule` supplies the
drops), each with an optional linear warmup from 0 in front.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from alexnet_jax.errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "WEIGHT_DECAY_ON",
    "PaperSgdState",
    "PlateauSchedule",
    "add_decayed_weights_where",
    "create_optimizer",
    "make_schedule",
    "paper_sgd",
    "parameter_groups",
    "weight_decay_mask",
]

OPTIMIZERS = ("paper_sgd", "sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "plateau")
WEIGHT_DECAY_ON = ("weights", "all")  # which parameters are decayed (see the module docstring)
WEIGHT_NAMES = ("kernel",)  # conv and dense kernels: decayed under 'weights'
NON_WEIGHT_NAMES = ("bias", "scale")  # biases, batch-norm offset ('bias') and scale: not decayed

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


class PaperSgdState(NamedTuple):
    """State of `paper_sgd`.

    Attributes:
      count: int32 scalar, the number of updates done so far (the step the
        learning-rate schedule is evaluated at for the next update).
      velocity: the momentum buffer v, a pytree shaped like the params.
    """

    count: jax.Array
    velocity: Any


def _parameter_name(path) -> str | None:
    """The innermost dict key of a tree path: 'kernel' for conv1's kernel, boxed or not."""
    keys = [entry.key for entry in path if isinstance(entry, jax.tree_util.DictKey)]
    return str(keys[-1]) if keys else None


def _check_weight_decay_on(weight_decay_on: str) -> None:
    if weight_decay_on not in WEIGHT_DECAY_ON:
        raise ConfigError(
            f"Unknown weight_decay_on {weight_decay_on!r}; valid values are 'weights' (conv and "
            "dense kernels only, as the paper's code: cuda-convnet, Caffe) and 'all' (every "
            "parameter)."
        )


def weight_decay_mask(params: Any, weight_decay_on: str) -> Any:
    """Which parameters weight decay acts on: True to decay, False to leave alone.

    Args:
      params: the parameter tree (arrays, shapes, or `nn.LogicallyPartitioned`
        boxes; `optax.MaskedNode` placeholders of other groups stay as they are).
      weight_decay_on: one of `WEIGHT_DECAY_ON`: `'all'` (every parameter) or
        `'weights'` (leaves named `'kernel'` only; `'bias'` and `'scale'`, i.e.
        biases and batch-norm offset and scale, are not decayed).

    Returns:
      A tree with the structure of `params` and Python bool leaves, as optax's
      `mask` arguments take it.

    Raises:
      ValueError: for an unknown `weight_decay_on`, or under `'weights'` for a
        parameter whose name is in neither `WEIGHT_NAMES` nor `NON_WEIGHT_NAMES`.
    """
    _check_weight_decay_on(weight_decay_on)

    def decayed(path, _):
        if weight_decay_on == "all":
            return True
        name = _parameter_name(path)
        if name in WEIGHT_NAMES:
            return True
        if name in NON_WEIGHT_NAMES:
            return False
        raise ConfigError(
            f"weight_decay_on='weights' cannot tell whether the parameter "
            f"{jax.tree_util.keystr(path)} is a weight: its name {name!r} is neither a weight "
            f"({', '.join(WEIGHT_NAMES)}) nor a bias or normalization parameter "
            f"({', '.join(NON_WEIGHT_NAMES)}); use weight_decay_on='all'."
        )

    return jax.tree_util.tree_map_with_path(decayed, params)


def _mask_of(weight_decay_on: str) -> Callable[[Any], Any] | None:
    """The mask function of a setting (None for 'all': no mask); an unknown setting raises now."""
    _check_weight_decay_on(weight_decay_on)
    if weight_decay_on == "all":
        return None
    return lambda params: weight_decay_mask(params, weight_decay_on)


def _decay_flags(mask, params):
    """`mask` (None, a bool tree, or params -> bool tree) as a bool tree shaped like `params`."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    return mask(params) if callable(mask) else mask


def add_decayed_weights_where(weight_decay, mask: Any = None) -> optax.GradientTransformation:
    """`optax.add_decayed_weights(weight_decay, mask)` keeping the unmasked state, `EmptyState()`.

    update = g + weight_decay * w where `mask` is True, g elsewhere. optax's
    own `mask` wraps the state in `optax.masked`'s `MaskedState`; this keeps
    the state of `sgd` and `adamw` the same for every mask, so a checkpoint
    restores whichever `weight_decay_on` wrote it.

    Args:
      weight_decay: the coefficient, a scalar.
      mask: None (decay everything), a tree of Python bools shaped like the
        params, or a function params -> such a tree (see `weight_decay_mask`).

    Returns:
      An `optax.GradientTransformation` whose `update` requires `params`.
    """

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "Weight decay needs the current parameters: call "
                "optimizer.update(grads, opt_state, params)."
            )
        updates = jax.tree.map(
            lambda g, w, decay: g + weight_decay * w if decay else g,
            updates,
            params,
            _decay_flags(mask, params),
        )
        return updates, state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def paper_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    mask: Any = None,
) -> optax.GradientTransformation:
    """The paper's SGD with momentum and weight decay, the rate inside the buffer.

    Per parameter w with gradient g:
        v <- momentum * v - weight_decay * lr * w * mask - lr * g;   update = v
    to be applied with `optax.apply_updates` (w <- w + v), mask 1 for the
    decayed parameters and 0 for the others. The paper's formula decays every
    parameter (`mask=None`); the paper's code decayed the weights only
    (`mask=lambda params: weight_decay_mask(params, 'weights')`; see the
    module docstring).

    Args:
      learning_rate: a float, or an optax schedule (step count -> rate); a
        schedule is evaluated at the number of updates done so far, so the
        first update uses `learning_rate(0)`. Also usable under
        `optax.inject_hyperparams(paper_sgd)(learning_rate=...)`, which then
        passes the current rate in as a scalar at every step.
      momentum: the momentum coefficient (0.9 in the paper).
      weight_decay: the weight-decay coefficient (5e-4 in the paper).
      mask: which parameters are decayed, as optax's `mask` arguments: None
        (all), a tree of Python bools shaped like the params, or a function
        params -> such a tree (`weight_decay_mask`). It does not change the
        state.

    Returns:
      An `optax.GradientTransformation` whose state is a `PaperSgdState` and
      whose `update(grads, state, params)` requires `params` (same tree and
      shapes as `grads`).
    """

    def init_fn(params):
        return PaperSgdState(
            count=jnp.zeros([], jnp.int32),
            velocity=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(grads, state, params=None):
        if params is None:
            raise ValueError(
                "paper_sgd needs the current parameters for its weight-decay term "
                "(v <- momentum*v - weight_decay*lr*w - lr*g): call "
                "optimizer.update(grads, opt_state, params)."
            )
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        velocity = jax.tree.map(
            lambda v, g, w, decay: (
                momentum * v - (weight_decay * lr) * w - lr * g if decay else momentum * v - lr * g
            ).astype(v.dtype),
            state.velocity,
            grads,
            params,
            _decay_flags(mask, params),
        )
        return velocity, PaperSgdState(count=optax.safe_increment(state.count), velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


# `weight_decay_on` is a string, which `inject_hyperparams` passes through as a static argument.
def _paper_sgd_scaled(
    learning_rate, momentum, weight_decay, learning_rate_scale=1.0, weight_decay_on="all"
):
    mask = _mask_of(weight_decay_on)
    return paper_sgd(learning_rate * learning_rate_scale, momentum, weight_decay, mask)


def _sgd_scaled(
    learning_rate, momentum, weight_decay, learning_rate_scale=1.0, weight_decay_on="all"
):
    return optax.chain(
        add_decayed_weights_where(weight_decay, _mask_of(weight_decay_on)),
        optax.sgd(learning_rate * learning_rate_scale, momentum),
    )


def _adamw_scaled(learning_rate, weight_decay, learning_rate_scale=1.0, weight_decay_on="all"):
    # optax.adamw(lr, weight_decay=wd) is this chain; its `mask` argument would wrap the
    # decay's state in a MaskedState, changing the state's structure.
    return optax.chain(
        optax.scale_by_adam(),
        add_decayed_weights_where(weight_decay, _mask_of(weight_decay_on)),
        optax.scale_by_learning_rate(learning_rate * learning_rate_scale),
    )


_FACTORIES = {"paper_sgd": _paper_sgd_scaled, "sgd": _sgd_scaled, "adamw": _adamw_scaled}


def layer_of(name: str) -> str:
    """The layer a top-level parameter collection belongs to: batch-norm `bn3` goes with `conv3`."""
    return "conv" + name[2:] if name.startswith("bn") and name[2:].isdigit() else name


def parameter_groups(
    params: Mapping[str, Any],
    frozen: Sequence[str] = (),
    head: Sequence[str] = (),
    backbone_lr_scale: float = 1.0,
) -> dict[str, Any]:
    """Which optimizer group every parameter is in, for `create_optimizer(groups=...)`.

    Args:
      params: the parameter tree (arrays or shapes), top level = layer names
        (`conv1` ... `conv5`, `fc6` ... `fc8`, batch-norm `bn1` ... `bn5`).
      frozen: layer names whose parameters must not change (a layer's
        batch-norm scale and offset go with it: freezing `conv2` freezes `bn2`).
      head: the layers trained at the full rate when `backbone_lr_scale` is
        not 1 (usually the classifier, `fc8`); every other unfrozen layer is
        'backbone'.
      backbone_lr_scale: the backbone's rate as a fraction of the head's.

    Returns:
      A tree with the structure of `params` whose leaves are 'train',
      'backbone' or 'frozen'.

    Raises:
      ValueError: a name in `frozen` or `head` is not a layer of `params` (the
        message lists the layers), or every layer would be frozen.
    """
    layers = sorted({layer_of(name) for name in params})
    for kind, names in (("frozen", frozen), ("head", head)):
        unknown = [name for name in names if name not in layers]
        if unknown:
            raise ConfigError(
                f"Cannot {'freeze' if kind == 'frozen' else 'use as the head'} {unknown}: the model's "
                f"layers are {', '.join(layers)}."
            )
    if set(layers) <= set(frozen):
        raise ConfigError(
            f"Every layer ({', '.join(layers)}) would be frozen: nothing would train."
        )

    def group(name: str) -> str:
        layer = layer_of(name)
        if layer in frozen:
            return "frozen"
        return "backbone" if backbone_lr_scale != 1.0 and layer not in head else "train"

    return {
        name: jax.tree.map(lambda _, g=group(name): g, subtree) for name, subtree in params.items()
    }


def _grouped(
    factory: Callable[..., optax.GradientTransformation], groups, backbone_lr_scale: float
):
    """`factory` turned into one that applies it per group (see `parameter_groups`)."""

    def grouped(learning_rate, *args, learning_rate_scale=1.0, **kwargs):
        transforms = {
            "train": factory(
                learning_rate, *args, learning_rate_scale=learning_rate_scale, **kwargs
            ),
            "backbone": factory(
                learning_rate,
                *args,
                learning_rate_scale=learning_rate_scale * backbone_lr_scale,
                **kwargs,
            ),
            "frozen": optax.set_to_zero(),
        }
        return optax.multi_transform(transforms, groups)

    # inject_hyperparams reads the hyperparameter names
    grouped.__signature__ = inspect.signature(factory)
    return grouped


def create_optimizer(
    name: str,
    learning_rate: ScalarOrSchedule,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    groups: Any = None,
    backbone_lr_scale: float = 1.0,
    weight_decay_on: str = "all",
) -> optax.GradientTransformation:
    """An optimizer by name, with run-time adjustable hyperparameters.

    Args:
      name: one of `OPTIMIZERS`:
        - `'paper_sgd'`: `paper_sgd`, the paper's rule (the rate inside the
          momentum buffer);
        - `'sgd'`: `optax.add_decayed_weights(weight_decay, mask)` then
          `optax.sgd(lr, momentum)`, the common form (the rate scales the
          buffer after the trace; equal to `'paper_sgd'` until the rate changes);
        - `'adamw'`: `optax.adamw(lr, weight_decay=weight_decay, mask=mask)`
          with optax's default betas; `momentum` is not used.
        (The mask is applied by `add_decayed_weights_where`, which leaves the
        state as optax's unmasked one.)
      learning_rate: a float or an optax schedule (see `make_schedule`).
      momentum: the SGD momentum coefficient.
      weight_decay: the weight-decay coefficient (decoupled for adamw).
      groups: None (every parameter trains), or a tree from `parameter_groups`
        (or a function params -> such a tree) putting each parameter in
        'train', 'backbone' (at `backbone_lr_scale` times the rate) or 'frozen'
        (never updated, no optimizer state).
      backbone_lr_scale: the 'backbone' group's rate relative to 'train'.
      weight_decay_on: one of `WEIGHT_DECAY_ON`: `'weights'` decays conv and
        dense kernels only (the paper's code: cuda-convnet, Caffe); `'all'`
        decays every parameter, biases and batch-norm scale and offset too
        (the formula as printed; torchvision). Within every group: a frozen
        parameter stays frozen, a backbone one is decayed by the same rule.

    Returns:
      An `optax.inject_hyperparams` transformation: `opt_state.hyperparams` holds
      `'learning_rate'`, `'learning_rate_scale'` (1.0), `'weight_decay'` and, for
      the SGD variants, `'momentum'`, as scalars in the params' dtype. Overwrite
      `'learning_rate_scale'` to apply plateau drops; overwriting
      `'learning_rate'` has an effect only when `learning_rate` is a constant.

    Raises:
      ValueError: for an unknown `name` or `weight_decay_on`.
    """
    if name not in _FACTORIES:
        raise ConfigError(f"Unknown optimizer {name!r}; valid names are {', '.join(OPTIMIZERS)}.")
    _check_weight_decay_on(weight_decay_on)  # here, not at the first step
    factory = _FACTORIES[name]
    if groups is not None:
        factory = _grouped(factory, groups, backbone_lr_scale)
    hyperparams = {
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "weight_decay_on": weight_decay_on,
    }
    if name != "adamw":
        hyperparams["momentum"] = momentum
    return optax.inject_hyperparams(factory)(**hyperparams)


def make_schedule(
    kind: str,
    base_learning_rate: float,
    steps_per_epoch: int,
    total_steps: int,
    warmup_epochs: float = 0.0,
    step_epochs: Sequence[float] = (30, 60, 80),
    step_factor: float = 0.1,
) -> optax.Schedule:
    """A learning-rate schedule: step count -> rate.

    With W = round(warmup_epochs * steps_per_epoch) warmup steps, the rate is
    `base_learning_rate * t / W` for steps t < W, then:
    - `'constant'`: `base_learning_rate`;
    - `'step'`: `base_learning_rate * step_factor ** k`, k the number of
      `step_epochs` already reached; drops happen at step
      round(epoch * steps_per_epoch), counted from the start of training
      (warmup included), so epoch 30 means the 31st epoch starts lower;
    - `'cosine'`: `base_learning_rate * (1 + cos(pi * (t - W) / (T - W))) / 2`,
      T = `total_steps`, from the base rate after warmup to 0 at the last step;
    - `'plateau'`: `base_learning_rate`; the drops are decided on the host by
      `PlateauSchedule` and applied as the optimizer's `learning_rate_scale`.

    Args:
      kind: one of `SCHEDULES`.
      base_learning_rate: the peak rate (0.01 in the paper).
      steps_per_epoch: optimizer steps per epoch, > 0.
      total_steps: steps in the whole run (used by `'cosine'`).
      warmup_epochs: length of the linear warmup from 0, in epochs (may be
        fractional); 0 for none.
      step_epochs: for `'step'`, the epochs at which the rate is multiplied by
        `step_factor`; each must lie after the warmup.
      step_factor: for `'step'`, the factor at each drop.

    Returns:
      An optax schedule, usable under `jit` with an int32 step count.

    Raises:
      ValueError: for an unknown `kind` or inconsistent step counts.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"Unknown schedule {kind!r}; valid kinds are {', '.join(SCHEDULES)}.")
    if steps_per_epoch <= 0:
        raise ConfigError(f"steps_per_epoch must be positive, got {steps_per_epoch}.")
    if warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be >= 0, got {warmup_epochs}.")
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))

    if kind in ("constant", "plateau"):
        main = optax.constant_schedule(base_learning_rate)
    elif kind == "step":
        boundaries = {}
        for epoch in step_epochs:
            boundary = int(round(epoch * steps_per_epoch))
            if boundary <= warmup_steps:
                raise ConfigError(
                    f"step_epochs entry {epoch} falls inside the warmup of {warmup_epochs} "
                    "epochs; make every step epoch larger than warmup_epochs."
                )
            # A repeated epoch drops twice, as listing it twice suggests.
            shifted = boundary - warmup_steps
            boundaries[shifted] = boundaries.get(shifted, 1.0) * step_factor
        main = optax.piecewise_constant_schedule(base_learning_rate, boundaries)
    else:  # cosine
        if total_steps <= warmup_steps:
            raise ConfigError(
                f"A cosine schedule needs total_steps ({total_steps}) larger than the "
                f"warmup steps ({warmup_steps} = warmup_epochs * steps_per_epoch)."
            )
        main = optax.cosine_decay_schedule(base_learning_rate, total_steps - warmup_steps)

    if warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, base_learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


class PlateauSchedule:
    """Divide the rate by 10 when the validation error stops improving.

    The paper: "divide the learning rate by 10 when the validation error rate
    stopped improving with the current learning rate", three times before the
    end. Decisions are made on the host, once per evaluation; the result is a
    multiplier (`scale`) that the loop writes into the optimizer state
    (`opt_state.hyperparams['learning_rate_scale'] = plateau.scale`).

    Rule (the same as torch's `ReduceLROnPlateau(mode='min',
    threshold_mode='abs', cooldown=0)`): an evaluation improves when its error
    is below `best - min_delta`; otherwise it is a bad evaluation. When more
    than `patience` bad evaluations come in a row, the scale is multiplied by
    `factor` and the count of bad evaluations starts again from 0 (the best
    error is kept). After `max_drops` drops nothing changes any more.

    `patience` counts evaluations. The paper reasoned in epochs; with one
    evaluation per epoch (the default loop) the two are the same, otherwise
    scale `patience` by the evaluations per epoch.

    Attributes:
      best: the lowest validation error seen so far, None before the first.
      bad_evals: evaluations since the last improvement or drop.
      drops: drops done so far, 0 <= drops <= max_drops.
    """

    def __init__(
        self,
        patience: int = 2,
        factor: float = 0.1,
        max_drops: int = 3,
        min_delta: float = 0.0,
    ):
        if patience < 0:
            raise ConfigError(f"patience must be >= 0 evaluations, got {patience}.")
        if not 0.0 < factor < 1.0:
            raise ConfigError(f"factor must be in (0, 1) to lower the rate, got {factor}.")
        if max_drops < 0:
            raise ConfigError(f"max_drops must be >= 0, got {max_drops}.")
        if min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0, got {min_delta}.")
        self.patience = int(patience)
        self.factor = float(factor)
        self.max_drops = int(max_drops)
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.bad_evals = 0
        self.drops = 0

    @property
    def scale(self) -> float:
        """The multiplier on the base rate now: `factor ** drops`."""
        return self.factor**self.drops

    def update(self, validation_error: float) -> bool:
        """Record one evaluation's error; return True when the rate just dropped.

        Args:
          validation_error: a scalar error (lower is better), e.g. top-1 error.

        Raises:
          ValueError: if the error is NaN or infinite.
        """
        error = float(validation_error)
        if not math.isfinite(error):
            raise ValueError(f"validation_error must be a finite number, got {validation_error}.")
        if self.best is None or error < self.best - self.min_delta:
            self.best = error
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        if self.bad_evals > self.patience and self.drops < self.max_drops:
            self.drops += 1
            self.bad_evals = 0
            return True
        return False

    def state_dict(self) -> dict:
        """The decision state as a plain JSON-serialisable dict.

        Returns:
          `{'best': float or None, 'bad_evals': int, 'drops': int}`; the
          hyperparameters (patience, factor, ...) come from the config, not from
          here.
        """
        return {"best": self.best, "bad_evals": self.bad_evals, "drops": self.drops}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state written by `state_dict` (e.g. from a checkpoint).

        Raises:
          ValueError: if keys are missing or `drops` exceeds `max_drops`.
        """
        expected = ("best", "bad_evals", "drops")
        missing = [key for key in expected if key not in state]
        if missing:
            raise ValueError(
                f"PlateauSchedule state is missing {missing}; expected the keys "
                f"{list(expected)} as written by state_dict()."
            )
        drops = int(state["drops"])
        if not 0 <= drops <= self.max_drops:
            raise ConfigError(
                f"Saved drops={drops} is outside 0..max_drops={self.max_drops}; "
                "was the checkpoint written with a different max_drops?"
            )
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_evals = int(state["bad_evals"])
        self.drops = drops
