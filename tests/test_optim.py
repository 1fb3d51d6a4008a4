"""Optimizers and schedules against numpy loops of their equations (and torch for the plateau rule)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from alexnet_jax.optim import (
    OPTIMIZERS,
    SCHEDULES,
    WEIGHT_DECAY_ON,
    PlateauSchedule,
    create_optimizer,
    make_schedule,
    paper_sgd,
    parameter_groups,
    weight_decay_mask,
)

NUM_STEPS = 10
DROP_AT = 5  # the first update at the lower rate
LR, DROPPED_LR = 0.1, 0.01
MOMENTUM, WEIGHT_DECAY = 0.9, 0.05  # a large decay so its term is visible at float32


def problem(seed=0):
    """Params {'a': (3, 4), 'b': (5,)} and NUM_STEPS random gradient trees, in float32."""
    rng = np.random.default_rng(seed)
    params = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,))}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(NUM_STEPS)]

    def as32(tree):
        return {k: v.astype(np.float32) for k, v in tree.items()}

    return as32(params), [as32(g) for g in grads]


def rates():
    return [LR if t < DROP_AT else DROPPED_LR for t in range(NUM_STEPS)]


def decay_masks(params, decayed):
    """1.0 for the keys in `decayed` (None: every key), 0.0 for the others."""
    return {k: 1.0 if decayed is None or k in decayed else 0.0 for k in params}


def numpy_paper_rule(
    params, grads, rates, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, decayed=None
):
    """v <- m v - wd lr w mask - lr g;  w <- w + v, in float64, mask 1 on `decayed` (None: all).

    Returns the list of updates v.
    """
    w = {k: v.astype(np.float64) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    updates = []
    for g, lr in zip(grads, rates):
        for k, mask in decay_masks(params, decayed).items():
            v[k] = momentum * v[k] - weight_decay * lr * w[k] * mask - lr * g[k]
            w[k] = w[k] + v[k]
        updates.append({k: x.copy() for k, x in v.items()})
    return updates


def numpy_common_rule(
    params, grads, rates, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, decayed=None
):
    """The sgd + add_decayed_weights form: t <- m t + g + wd w mask;  w <- w - lr t."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    t = {k: np.zeros_like(x) for k, x in w.items()}
    updates = []
    for g, lr in zip(grads, rates):
        update = {}
        for k, mask in decay_masks(params, decayed).items():
            t[k] = momentum * t[k] + g[k] + weight_decay * w[k] * mask
            update[k] = -lr * t[k]
            w[k] = w[k] + update[k]
        updates.append(update)
    return updates


def run(optimizer, params, grads, set_rate=None):
    """Apply the optimizer for all grads; `set_rate(state, t)` may edit the state before step t."""
    state = optimizer.init(params)
    step = jax.jit(optimizer.update)
    params = jax.tree.map(jnp.asarray, params)
    updates = []
    for t, g in enumerate(grads):
        if set_rate is not None:
            state = set_rate(state, t)
        update, state = step(g, state, params)
        params = optax.apply_updates(params, update)
        updates.append(jax.tree.map(np.asarray, update))
    return updates


def assert_updates_close(ours, reference, steps=range(NUM_STEPS)):
    for t in steps:
        for k in reference[t]:
            np.testing.assert_allclose(
                ours[t][k], reference[t][k], rtol=1e-5, atol=1e-6, err_msg=f"step {t}, {k}"
            )


def drop_schedule():
    return optax.piecewise_constant_schedule(LR, {DROP_AT: DROPPED_LR / LR})


def overwrite_rate(key):
    def set_rate(state, t):
        if t == DROP_AT:
            state.hyperparams[key] = jnp.asarray(
                DROPPED_LR / LR if key.endswith("scale") else DROPPED_LR
            )
        return state

    return set_rate


def test_paper_sgd_with_schedule_equals_paper_equations():
    params, grads = problem()
    ours = run(paper_sgd(drop_schedule(), MOMENTUM, WEIGHT_DECAY), params, grads)
    assert_updates_close(ours, numpy_paper_rule(params, grads, rates()))


def test_paper_sgd_under_inject_hyperparams_follows_overwritten_rate():
    params, grads = problem(1)
    optimizer = optax.inject_hyperparams(paper_sgd)(
        learning_rate=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    ours = run(optimizer, params, grads, overwrite_rate("learning_rate"))
    assert_updates_close(ours, numpy_paper_rule(params, grads, rates()))


@pytest.mark.parametrize("key", ["learning_rate", "learning_rate_scale"])
def test_create_optimizer_paper_sgd_follows_overwritten_rate(key):
    params, grads = problem(2)
    optimizer = create_optimizer("paper_sgd", LR, MOMENTUM, WEIGHT_DECAY)
    ours = run(optimizer, params, grads, overwrite_rate(key))
    assert_updates_close(ours, numpy_paper_rule(params, grads, rates()))


def test_common_sgd_agrees_before_the_drop_and_differs_after():
    params, grads = problem(3)
    paper = numpy_paper_rule(params, grads, rates())
    common = numpy_common_rule(params, grads, rates())
    ours = run(create_optimizer("sgd", drop_schedule(), MOMENTUM, WEIGHT_DECAY), params, grads)
    assert_updates_close(ours, common)
    # The same updates as the paper while the rate is constant...
    assert_updates_close(ours, paper, steps=range(DROP_AT))
    # ...and not after it: the common form rescales the whole buffer by the new
    # rate, so right after a drop its step is about 10x smaller.
    for t in range(DROP_AT, NUM_STEPS):
        ratio = np.abs(ours[t]["a"]).sum() / np.abs(paper[t]["a"]).sum()
        assert ratio < 0.5, (t, ratio)
    plain = optax.chain(
        optax.add_decayed_weights(WEIGHT_DECAY), optax.sgd(drop_schedule(), MOMENTUM)
    )
    assert_updates_close(run(plain, params, grads), common)


def test_paper_sgd_requires_params():
    optimizer = paper_sgd(0.01)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="needs the current parameters"):
        optimizer.update(params, optimizer.init(params))
    wrapped = create_optimizer("paper_sgd", 0.01)
    with pytest.raises(ValueError, match="needs the current parameters"):
        wrapped.update(params, wrapped.init(params))


def test_adamw_equals_numpy_adamw_and_scale():
    params, grads = problem(4)
    lr, b1, b2, eps, wd = 1e-2, 0.9, 0.999, 1e-8, 0.05
    ours = run(
        create_optimizer("adamw", lr, weight_decay=wd),
        params,
        grads,
        overwrite_rate("learning_rate_scale"),
    )
    w = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(x) for k, x in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, g in enumerate(grads):
        rate = lr if t < DROP_AT else lr * DROPPED_LR / LR
        for k in w:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** (t + 1)), v[k] / (1 - b2 ** (t + 1))
            update = -rate * (m_hat / (np.sqrt(v_hat) + eps) + wd * w[k])
            np.testing.assert_allclose(
                ours[t][k], update, rtol=1e-4, atol=1e-7, err_msg=f"step {t}, {k}"
            )
            w[k] = w[k] + update


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_create_optimizer_exposes_hyperparams(name):
    optimizer = create_optimizer(name, 0.01, momentum=0.8, weight_decay=1e-3)
    state = optimizer.init({"w": jnp.ones((2, 2))})
    hyperparams = state.hyperparams
    assert float(hyperparams["learning_rate"]) == pytest.approx(0.01)
    assert float(hyperparams["learning_rate_scale"]) == 1.0
    assert float(hyperparams["weight_decay"]) == pytest.approx(1e-3)
    if name != "adamw":
        assert float(hyperparams["momentum"]) == pytest.approx(0.8)


def test_create_optimizer_with_schedule_reports_scheduled_rate():
    optimizer = create_optimizer("paper_sgd", drop_schedule())
    params = {"w": jnp.ones(2)}
    state = optimizer.init(params)
    for t in range(DROP_AT + 1):
        _, state = optimizer.update(params, state, params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(DROPPED_LR)


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError) as error:
        create_optimizer("adam", 0.01)
    for name in ("paper_sgd", "sgd", "adamw"):
        assert name in str(error.value)


# Schedules, against closed forms.

STEPS_PER_EPOCH, TOTAL_EPOCHS = 10, 90
TOTAL_STEPS = STEPS_PER_EPOCH * TOTAL_EPOCHS


def evaluate(schedule, steps):
    return np.array([float(schedule(jnp.int32(t))) for t in steps])


def closed_form(kind, base, t, warmup_steps, step_epochs=(30, 60, 80), factor=0.1):
    if t < warmup_steps:
        return base * t / warmup_steps
    if kind in ("constant", "plateau"):
        return base
    if kind == "step":
        return base * factor ** sum(t >= e * STEPS_PER_EPOCH for e in step_epochs)
    progress = min(1.0, (t - warmup_steps) / (TOTAL_STEPS - warmup_steps))  # 0 after the end
    return base * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("kind", SCHEDULES)
@pytest.mark.parametrize("warmup_epochs", [0.0, 2.5])
def test_schedules_equal_closed_form(kind, warmup_epochs):
    schedule = make_schedule(kind, 0.01, STEPS_PER_EPOCH, TOTAL_STEPS, warmup_epochs=warmup_epochs)
    warmup_steps = int(warmup_epochs * STEPS_PER_EPOCH)
    steps = list(range(40)) + [299, 300, 301, 450, 599, 600, 799, 800, 801, 899, 900, 1000]
    expected = np.array([closed_form(kind, 0.01, t, warmup_steps) for t in steps])
    np.testing.assert_allclose(evaluate(jax.jit(schedule), steps), expected, rtol=1e-5, atol=1e-9)


def test_warmup_is_linear_from_zero_and_step_drops_at_epochs():
    schedule = make_schedule("step", 0.1, 100, 9000, warmup_epochs=1.0, step_epochs=(30, 60))
    np.testing.assert_allclose(
        evaluate(schedule, [0, 25, 50, 99, 100]), [0.0, 0.025, 0.05, 0.099, 0.1], rtol=1e-6
    )
    np.testing.assert_allclose(
        evaluate(schedule, [2999, 3000, 5999, 6000]), [0.1, 0.01, 0.01, 0.001], rtol=1e-5
    )


def test_cosine_endpoints():
    schedule = make_schedule("cosine", 0.2, 10, 1000, warmup_epochs=5)
    np.testing.assert_allclose(
        evaluate(schedule, [50, 525, 1000, 2000]), [0.2, 0.1, 0.0, 0.0], atol=1e-7
    )


def test_schedule_errors():
    with pytest.raises(ValueError, match="constant, step, cosine, plateau"):
        make_schedule("linear", 0.01, 10, 100)
    with pytest.raises(ValueError, match="inside the warmup"):
        make_schedule("step", 0.01, 10, 1000, warmup_epochs=5, step_epochs=(3, 30))
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("cosine", 0.01, 10, 50, warmup_epochs=5)


# The plateau rule.

ERRORS = [
    0.9,
    0.8,
    0.7,
    0.7,
    0.71,
    0.72,
    0.6,
    0.65,
    0.66,
    0.61,
    0.6,
    0.59,
    0.59,
    0.59,
    0.59,
    0.58,
    0.58,
    0.58,
    0.58,
    0.58,
    0.58,
    0.58,
    0.58,
    0.58,
]


def torch_drops(errors, patience, min_delta, max_drops, factor=0.1):
    """Which evaluations torch's ReduceLROnPlateau lowers the rate at (min_lr caps the drops)."""
    floor = 1.0
    for _ in range(max_drops):
        floor *= factor  # the rate after max_drops drops, bit for bit as torch computes it
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="min",
        factor=factor,
        patience=patience,
        threshold=min_delta,
        threshold_mode="abs",
        cooldown=0,
        min_lr=floor,
        eps=0.0,
    )
    dropped = []
    for error in errors:
        before = opt.param_groups[0]["lr"]
        sched.step(error)
        dropped.append(opt.param_groups[0]["lr"] < before)
    return dropped


def test_plateau_drops_when_patience_is_exceeded():
    plateau = PlateauSchedule(patience=2, max_drops=3)
    dropped = [plateau.update(e) for e in ERRORS]
    # 0.7 at index 2 is the best; 3, 4, 5 do not improve -> drop at 5.
    # 0.6 at 6; 7, 8, 9 bad -> drop at 9; 10 equals 0.6 (no improvement without
    # being strictly lower), 11 improves; 12, 13, 14 bad -> drop at 14: the third.
    assert [i for i, d in enumerate(dropped) if d] == [5, 9, 14]
    assert plateau.drops == 3 and plateau.scale == pytest.approx(1e-3)
    assert plateau.best == pytest.approx(0.58)


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("min_delta", [0.0, 0.015])
@pytest.mark.parametrize("max_drops", [1, 3])
def test_plateau_equals_torch_reduce_on_plateau(patience, min_delta, max_drops):
    errors = list(ERRORS) + list(np.random.default_rng(patience).uniform(0.4, 0.6, size=30))
    plateau = PlateauSchedule(patience=patience, max_drops=max_drops, min_delta=min_delta)
    ours = [plateau.update(e) for e in errors]
    assert ours == torch_drops(errors, patience, min_delta, max_drops)
    assert sum(ours) <= max_drops


def test_plateau_state_dict_round_trip_resumes_identically():
    errors = list(ERRORS)
    uninterrupted = PlateauSchedule()
    expected = [uninterrupted.update(e) for e in errors]
    for cut in range(len(errors) + 1):
        first = PlateauSchedule()
        decisions = [first.update(e) for e in errors[:cut]]
        saved = json.loads(json.dumps(first.state_dict()))
        resumed = PlateauSchedule()
        resumed.load_state_dict(saved)
        decisions += [resumed.update(e) for e in errors[cut:]]
        assert decisions == expected, cut
        assert resumed.state_dict() == uninterrupted.state_dict()
        assert resumed.scale == uninterrupted.scale


def test_plateau_rejects_bad_input():
    with pytest.raises(ValueError, match="best"):
        PlateauSchedule().load_state_dict({"drops": 0, "bad_evals": 0})
    with pytest.raises(ValueError, match="max_drops"):
        PlateauSchedule(max_drops=3).load_state_dict({"best": 0.5, "bad_evals": 0, "drops": 4})
    with pytest.raises(ValueError, match="finite"):
        PlateauSchedule().update(float("nan"))


def test_overwriting_a_scheduled_rate_is_ignored_but_the_scale_is_not():
    """optax recomputes scheduled hyperparameters each step: plateau drops must go through the scale."""
    params, grads = problem(5)
    warmup_then_constant = make_schedule(
        "plateau", LR, steps_per_epoch=2, total_steps=NUM_STEPS, warmup_epochs=1
    )
    expected_rates = [float(warmup_then_constant(t)) for t in range(NUM_STEPS)]
    optimizer = create_optimizer("paper_sgd", warmup_then_constant, MOMENTUM, WEIGHT_DECAY)
    ignored = run(optimizer, params, grads, overwrite_rate("learning_rate"))
    assert_updates_close(ignored, numpy_paper_rule(params, grads, expected_rates))
    scaled = run(optimizer, params, grads, overwrite_rate("learning_rate_scale"))
    dropped_rates = [
        r * (DROPPED_LR / LR if t >= DROP_AT else 1.0) for t, r in enumerate(expected_rates)
    ]
    assert_updates_close(scaled, numpy_paper_rule(params, grads, dropped_rates))


# Which parameters are decayed (weight_decay_on), against numpy and torch with the mask written out.

# A tree shaped like the model's: conv and dense kernels and biases, batch-norm scale and offset.
LAYER_SHAPES = {
    "conv1": {"kernel": (3, 3, 2, 4), "bias": (4,)},
    "bn1": {"scale": (4,), "bias": (4,)},
    "fc6": {"kernel": (6, 5), "bias": (5,)},
    "fc8": {"kernel": (5, 3), "bias": (3,)},
}
# The paper's code: weight cost on the kernels only (cuda-convnet; Caffe's decay_mult: 0 on biases).
KERNELS = {"conv1/kernel", "fc6/kernel", "fc8/kernel"}
ALL_LEAVES = {f"{layer}/{name}" for layer, names in LAYER_SHAPES.items() for name in names}
DECAYED = {"weights": KERNELS, "all": ALL_LEAVES}


def nest(flat):
    tree = {}
    for key, value in flat.items():
        layer, name = key.split("/")
        tree.setdefault(layer, {})[name] = value
    return tree


def flatten(tree):
    return {f"{layer}/{name}": x for layer, names in tree.items() for name, x in names.items()}


def layered_problem(seed=0):
    """Flat {'layer/name': float32 array} params over LAYER_SHAPES and NUM_STEPS gradients."""
    rng = np.random.default_rng(seed)
    params = {
        f"{layer}/{name}": rng.normal(size=shape).astype(np.float32)
        for layer, names in LAYER_SHAPES.items()
        for name, shape in names.items()
    }
    grads = [
        {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        for _ in range(NUM_STEPS)
    ]
    return params, grads


def run_nested(optimizer, params, grads):
    return [flatten(u) for u in run(optimizer, nest(params), [nest(g) for g in grads])]


@pytest.mark.parametrize("weight_decay_on", WEIGHT_DECAY_ON)
@pytest.mark.parametrize("name", ["paper_sgd", "sgd"])
def test_sgd_variants_decay_what_weight_decay_on_says(name, weight_decay_on):
    params, grads = layered_problem(6)
    rule = numpy_common_rule if name == "sgd" else numpy_paper_rule
    optimizer = create_optimizer(
        name, drop_schedule(), MOMENTUM, WEIGHT_DECAY, weight_decay_on=weight_decay_on
    )
    ours = run_nested(optimizer, params, grads)
    assert_updates_close(ours, rule(params, grads, rates(), decayed=DECAYED[weight_decay_on]))
    if weight_decay_on == "weights":  # both halves of the mask show at this decay
        undecayed = rule(params, grads, rates(), decayed=set())
        assert not np.allclose(ours[-1]["conv1/kernel"], undecayed[-1]["conv1/kernel"], rtol=1e-3)
        everything = rule(params, grads, rates())
        assert not np.allclose(ours[-1]["bn1/scale"], everything[-1]["bn1/scale"], rtol=1e-3)


def test_paper_sgd_takes_a_mask_like_optax():
    params, grads = layered_problem(7)
    expected = numpy_paper_rule(params, grads, rates(), decayed=KERNELS)
    as_tree = nest({k: k in KERNELS for k in params})
    for mask in (as_tree, lambda p: weight_decay_mask(p, "weights")):
        optimizer = paper_sgd(drop_schedule(), MOMENTUM, WEIGHT_DECAY, mask)
        assert_updates_close(run_nested(optimizer, params, grads), expected)


@pytest.mark.parametrize("weight_decay_on", WEIGHT_DECAY_ON)
def test_adamw_equals_torch_adamw_with_an_undecayed_group(weight_decay_on):
    params, grads = layered_problem(8)
    lr, wd = 1e-2, 0.05
    optimizer = create_optimizer("adamw", lr, weight_decay=wd, weight_decay_on=weight_decay_on)
    ours = run_nested(optimizer, params, grads)
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()
    }
    decayed = DECAYED[weight_decay_on]
    reference = torch.optim.AdamW(
        [
            {"params": [x for k, x in tensors.items() if k in decayed], "weight_decay": wd},
            {"params": [x for k, x in tensors.items() if k not in decayed], "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    for t, g in enumerate(grads):
        before = {k: x.detach().clone() for k, x in tensors.items()}
        for k, x in tensors.items():
            x.grad = torch.tensor(g[k], dtype=torch.float64)
        reference.step()
        for k, x in tensors.items():
            np.testing.assert_allclose(
                ours[t][k],
                (x.detach() - before[k]).numpy(),
                rtol=2e-4,
                atol=1e-7,
                err_msg=f"step {t}, {k}",
            )


@pytest.mark.parametrize("weight_decay_on", WEIGHT_DECAY_ON)
def test_frozen_stay_frozen_and_backbone_is_decayed_by_the_same_rule(weight_decay_on):
    params, grads = layered_problem(9)
    scale = 0.1
    groups = parameter_groups(
        nest(params), frozen=("conv1",), head=("fc8",), backbone_lr_scale=scale
    )
    optimizer = create_optimizer(
        "paper_sgd",
        LR,
        MOMENTUM,
        WEIGHT_DECAY,
        groups=groups,
        backbone_lr_scale=scale,
        weight_decay_on=weight_decay_on,
    )
    ours = run_nested(optimizer, params, grads)
    leaf_groups = flatten(groups)
    assert leaf_groups["bn1/scale"] == "frozen" and leaf_groups["fc6/bias"] == "backbone"
    assert leaf_groups["fc8/bias"] == "train"
    for key, group in leaf_groups.items():
        if group == "frozen":
            assert all(not np.any(u[key]) for u in ours), key
            continue
        rate = LR * (scale if group == "backbone" else 1.0)
        expected = numpy_paper_rule(
            {key: params[key]},
            [{key: g[key]} for g in grads],
            [rate] * NUM_STEPS,
            decayed=DECAYED[weight_decay_on],
        )
        assert_updates_close([{key: u[key]} for u in ours], expected)


@pytest.mark.parametrize("weight_decay_on, survives", [("weights", 1.0), ("all", 0.61)])
def test_unused_bias_of_one_keeps_its_value_only_without_decay(weight_decay_on, survives):
    """The paper's lr 0.01, momentum 0.9, wd 5e-4: decayed, an unused bias 1 loses 5e-5 a step."""
    lr, momentum, wd, steps = 0.01, 0.9, 5e-4, 10_009  # one ImageNet epoch at batch 128
    params = {"fc6": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    zero = jax.tree.map(jnp.zeros_like, params)
    optimizer = create_optimizer("paper_sgd", lr, momentum, wd, weight_decay_on=weight_decay_on)

    @jax.jit
    def bias_per_step(params):
        def step(carry, _):
            params, state = carry
            update, state = optimizer.update(zero, state, params)
            params = optax.apply_updates(params, update)
            return (params, state), params["fc6"]["bias"][0]

        return jax.lax.scan(step, (params, optimizer.init(params)), length=steps)[1]

    biases = np.asarray(bias_per_step(params), np.float64)
    if weight_decay_on == "weights":
        assert np.all(biases == 1.0)
    else:  # once the momentum has built up, each step takes lr * wd / (1 - momentum) of it
        np.testing.assert_allclose(1.0 - biases[-1] / biases[-2], 5e-5, rtol=0.01)
    assert biases[-1] == pytest.approx(survives, abs=0.005)


def test_the_paper_model_decays_its_kernels_only():
    """10,568 of the paper model's 60,965,224 parameters are biases.

    96 + 256 + 384 + 384 + 256 (conv1-5) + 4096 + 4096 + 1000 (fc6-8), REFERENCE.md's layer table.
    """
    from alexnet_jax.models import AlexNet

    model = AlexNet(num_classes=1000, variant="paper", towers=2)
    image = jnp.zeros((1, 224, 224, 3))
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), image))["params"]
    for weight_decay_on, expected in (("all", 60_965_224), ("weights", 60_965_224 - 10_568)):
        mask = jax.tree.leaves(weight_decay_mask(params, weight_decay_on))
        sizes = [int(np.prod(p.shape)) for p in jax.tree.leaves(params)]
        decayed = sum(size for size, decay in zip(sizes, mask) if decay)
        assert decayed == expected, weight_decay_on


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_weight_decay_on_leaves_the_state_structure_as_before(name):
    """Checkpoints restore across the setting, and those written before it existed restore too."""
    params = nest(layered_problem()[0])

    def sgd_before(learning_rate, momentum, weight_decay, learning_rate_scale=1.0):
        rate = learning_rate * learning_rate_scale
        if name == "paper_sgd":
            return paper_sgd(rate, momentum, weight_decay)
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(rate, momentum))

    def adamw_before(learning_rate, weight_decay, learning_rate_scale=1.0):
        return optax.adamw(learning_rate * learning_rate_scale, weight_decay=weight_decay)

    if name == "adamw":
        before = optax.inject_hyperparams(adamw_before)(learning_rate=0.01, weight_decay=5e-4)
    else:
        before = optax.inject_hyperparams(sgd_before)(
            learning_rate=0.01, momentum=0.9, weight_decay=5e-4
        )
    expected = jax.tree.structure(before.init(params))
    for weight_decay_on in WEIGHT_DECAY_ON:
        state = create_optimizer(name, 0.01, weight_decay_on=weight_decay_on).init(params)
        assert jax.tree.structure(state) == expected, weight_decay_on


def test_weight_decay_on_errors_are_clear():
    expected = r"Unknown weight_decay_on 'biases'; valid values are 'weights' .* and 'all'"
    with pytest.raises(ValueError, match=expected):
        create_optimizer("paper_sgd", 0.01, weight_decay_on="biases")
    with pytest.raises(ValueError, match="valid values are 'weights'"):
        weight_decay_mask({"w": jnp.ones(2)}, "Weights")
    optimizer = create_optimizer("sgd", 0.01, weight_decay_on="weights")
    params = {"conv1": {"embedding": jnp.ones(2)}}
    unknown = r"\['conv1'\]\['embedding'\] is a weight.*weight_decay_on='all'"
    with pytest.raises(ValueError, match=unknown):
        optimizer.update(params, optimizer.init(params), params)
