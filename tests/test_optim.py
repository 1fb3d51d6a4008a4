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
    PlateauSchedule,
    create_optimizer,
    make_schedule,
    paper_sgd,
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
    as32 = lambda tree: {k: v.astype(np.float32) for k, v in tree.items()}
    return as32(params), [as32(g) for g in grads]


def rates():
    return [LR if t < DROP_AT else DROPPED_LR for t in range(NUM_STEPS)]


def numpy_paper_rule(params, grads, rates, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY):
    """v <- m v - wd lr w - lr g;  w <- w + v, in float64. Returns the list of updates v."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    updates = []
    for g, lr in zip(grads, rates):
        for k in w:
            v[k] = momentum * v[k] - weight_decay * lr * w[k] - lr * g[k]
            w[k] = w[k] + v[k]
        updates.append({k: x.copy() for k, x in v.items()})
    return updates


def numpy_common_rule(params, grads, rates, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY):
    """The sgd + add_decayed_weights form: t <- m t + g + wd w;  w <- w - lr t."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    t = {k: np.zeros_like(x) for k, x in w.items()}
    updates = []
    for g, lr in zip(grads, rates):
        update = {}
        for k in w:
            t[k] = momentum * t[k] + g[k] + weight_decay * w[k]
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
            np.testing.assert_allclose(ours[t][k], reference[t][k], rtol=1e-5, atol=1e-6, err_msg=f"step {t}, {k}")


def drop_schedule():
    return optax.piecewise_constant_schedule(LR, {DROP_AT: DROPPED_LR / LR})


def overwrite_rate(key):
    def set_rate(state, t):
        if t == DROP_AT:
            state.hyperparams[key] = jnp.asarray(DROPPED_LR / LR if key.endswith("scale") else DROPPED_LR)
        return state

    return set_rate


def test_paper_sgd_with_schedule_equals_paper_equations():
    params, grads = problem()
    ours = run(paper_sgd(drop_schedule(), MOMENTUM, WEIGHT_DECAY), params, grads)
    assert_updates_close(ours, numpy_paper_rule(params, grads, rates()))


def test_paper_sgd_under_inject_hyperparams_follows_overwritten_rate():
    params, grads = problem(1)
    optimizer = optax.inject_hyperparams(paper_sgd)(learning_rate=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
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
    plain = optax.chain(optax.add_decayed_weights(WEIGHT_DECAY), optax.sgd(drop_schedule(), MOMENTUM))
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
    ours = run(create_optimizer("adamw", lr, weight_decay=wd), params, grads, overwrite_rate("learning_rate_scale"))
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
            np.testing.assert_allclose(ours[t][k], update, rtol=1e-4, atol=1e-7, err_msg=f"step {t}, {k}")
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
    steps = list(range(0, 40)) + [299, 300, 301, 450, 599, 600, 799, 800, 801, 899, 900, 1000]
    expected = np.array([closed_form(kind, 0.01, t, warmup_steps) for t in steps])
    np.testing.assert_allclose(evaluate(jax.jit(schedule), steps), expected, rtol=1e-5, atol=1e-9)


def test_warmup_is_linear_from_zero_and_step_drops_at_epochs():
    schedule = make_schedule("step", 0.1, 100, 9000, warmup_epochs=1.0, step_epochs=(30, 60))
    np.testing.assert_allclose(evaluate(schedule, [0, 25, 50, 99, 100]), [0.0, 0.025, 0.05, 0.099, 0.1], rtol=1e-6)
    np.testing.assert_allclose(evaluate(schedule, [2999, 3000, 5999, 6000]), [0.1, 0.01, 0.01, 0.001], rtol=1e-5)


def test_cosine_endpoints():
    schedule = make_schedule("cosine", 0.2, 10, 1000, warmup_epochs=5)
    np.testing.assert_allclose(evaluate(schedule, [50, 525, 1000, 2000]), [0.2, 0.1, 0.0, 0.0], atol=1e-7)


def test_schedule_errors():
    with pytest.raises(ValueError, match="constant, step, cosine, plateau"):
        make_schedule("linear", 0.01, 10, 100)
    with pytest.raises(ValueError, match="inside the warmup"):
        make_schedule("step", 0.01, 10, 1000, warmup_epochs=5, step_epochs=(3, 30))
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("cosine", 0.01, 10, 50, warmup_epochs=5)


# The plateau rule.

ERRORS = [0.9, 0.8, 0.7, 0.7, 0.71, 0.72, 0.6, 0.65, 0.66, 0.61, 0.6, 0.59, 0.59,
          0.59, 0.59, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58, 0.58]


def torch_drops(errors, patience, min_delta, max_drops, factor=0.1):
    """Which evaluations torch's ReduceLROnPlateau lowers the rate at (min_lr caps the drops)."""
    floor = 1.0
    for _ in range(max_drops):
        floor *= factor  # the rate after max_drops drops, bit for bit as torch computes it
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=factor, patience=patience, threshold=min_delta,
        threshold_mode="abs", cooldown=0, min_lr=floor, eps=0.0,
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
    warmup_then_constant = make_schedule("plateau", LR, steps_per_epoch=2, total_steps=NUM_STEPS, warmup_epochs=1)
    expected_rates = [float(warmup_then_constant(t)) for t in range(NUM_STEPS)]
    optimizer = create_optimizer("paper_sgd", warmup_then_constant, MOMENTUM, WEIGHT_DECAY)
    ignored = run(optimizer, params, grads, overwrite_rate("learning_rate"))
    assert_updates_close(ignored, numpy_paper_rule(params, grads, expected_rates))
    scaled = run(optimizer, params, grads, overwrite_rate("learning_rate_scale"))
    dropped_rates = [r * (DROPPED_LR / LR if t >= DROP_AT else 1.0) for t, r in enumerate(expected_rates)]
    assert_updates_close(scaled, numpy_paper_rule(params, grads, dropped_rates))
