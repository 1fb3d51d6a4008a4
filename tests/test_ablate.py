"""The ablation study: every variant builds and trains, the runner writes its table and pictures."""

import contextlib
import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_data import FIRST_40_TEST_DIGITS, digits_config

from alexnet_jax import steps
from alexnet_jax.errors import ConfigError
from configs import default
from experiments import ablate, runner


def _one_step(config):
    """Initial params, params after one `steps.train_step`, and its metrics.

    Op by op (`jax.disable_jit`): every variant is a different program, and compiling each whole
    would cost far more than running it once; the ops themselves are compiled once for all
    variants (one xdist worker runs them all). Two towers are the exception: op by op their
    mapped backward pass is about 600 small programs (45 s on 2 CPU cores), compiled whole one
    (8 s). The jitted, sharded step runs in the study test below.
    """
    compiled = config.towers > 1
    with contextlib.nullcontext() if compiled else jax.disable_jit():
        model = steps.create_model(config)
        tx = steps.create_optimizer(config, steps_per_epoch=10, total_steps=config.num_train_steps)
        init = functools.partial(steps.init_state, model=model, tx=tx, image_size=config.image_size)
        step = functools.partial(
            steps.train_step, model=model, tx=tx, label_smoothing=config.label_smoothing
        )
        if compiled:
            init, step = jax.jit(init), jax.jit(step)
        state = nn.unbox(init(jax.random.key(config.seed)))
        rng = np.random.default_rng(0)
        batch = {
            "image": rng.normal(size=(4, 32, 32, 3)).astype(np.float32),
            "label": np.arange(4, dtype=np.int32),
        }
        after, metrics = step(state, batch, jax.random.key(1))
    return jax.device_get(state.params), jax.device_get(after.params), jax.device_get(metrics)


VARIANTS = ablate.VARIANTS + (
    ablate.combine([v for v in ablate.VARIANTS if v.group == "modern"], "all modern"),
)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.slug for v in VARIANTS])
@pytest.mark.slow
@pytest.mark.xdist_group("ablate_variants")  # one worker compiles the shared ops once
def test_every_variant_builds_and_takes_a_training_step(variant):
    protocol = default.get_config()
    protocol.num_train_steps, protocol.schedule, protocol.warmup_epochs = 100, "step", 0.0
    protocol.step_epochs = (2.0,)
    config = ablate.variant_config(protocol, variant, seed=0)
    for key, value in variant.overrides.items():
        assert config[key] == value
    before, after, metrics = _one_step(config)
    assert np.isfinite(metrics["loss"]) and metrics["finite"]
    assert metrics["loss"] > 0.5  # ten classes, a fresh network: about log(10)
    assert jax.tree.structure(before) == jax.tree.structure(after)
    moved = [
        float(np.max(np.abs(a - b)))
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))
    ]
    if metrics["learning_rate"] > 0:
        assert max(moved) > 0, "the step changed no parameter"
    else:  # the first step of a warmup from 0
        assert max(moved) == 0 and config.warmup_epochs > 0


# Parameter counts worked out by hand from the layer shapes (32x32x3 input, 10 classes).
HAND_COUNTS = {
    # conv1..5 (5x5x3x64, 5x5x64x128, 3x3x128x192, 3x3x192x192, 3x3x192x128), fc 1152x512, 512x512, 512x10.
    "baseline": (4800 + 64)
    + (204800 + 128)
    + (221184 + 192)
    + (331776 + 192)
    + (221184 + 128)
    + (589824 + 512)
    + (262144 + 512)
    + (5120 + 10),
    # conv1 + LRN + pool 32 -> 15: 15 * 15 * 64 = 14400 features into the classifier.
    "shallow_one_conv_layer_classifier": (4800 + 64) + (14400 * 10 + 10),
    "shallow_logistic_regression_on_pixels": 32 * 32 * 3 * 10 + 10,
    # conv1-conv3 (no pool after conv3: 7x7x192 = 9408 features), one hidden layer of 512.
    "fewer_layers_conv1_3_one_fc": (4800 + 64)
    + (204800 + 128)
    + (221184 + 192)
    + (9408 * 512 + 512)
    + (5120 + 10),
    # Two towers: conv2, conv4, conv5 see half the input channels.
    "two_towers_paper_s_connectivity": (4800 + 64)
    + (2 * 5 * 5 * 32 * 64 + 128)
    + (221184 + 192)
    + (2 * 9 * 96 * 96 + 192)
    + (2 * 9 * 96 * 64 + 128)
    + (1152 * 512 + 512)
    + (512 * 512 + 512)
    + (5120 + 10),
}


@pytest.mark.parametrize("slug", sorted(HAND_COUNTS))
def test_size_variants_have_the_hand_counted_parameters(slug):
    (variant,) = [v for v in ablate.VARIANTS if v.slug == slug]
    config = ablate.variant_config(default.get_config(), variant, seed=0)
    assert ablate.count_params(ablate.abstract_params(config)) == HAND_COUNTS[slug]


def test_logistic_regression_variant_is_pixels_times_a_matrix():
    """With no conv and no hidden layer, the logits are the flattened image (H, W, C order) @ W + b."""
    (variant,) = [v for v in ablate.VARIANTS if v.slug == "shallow_logistic_regression_on_pixels"]
    model = steps.create_model(ablate.variant_config(default.get_config(), variant, seed=0))
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    params = model.init(jax.random.key(0), jnp.asarray(images))["params"]
    kernel, bias = (np.asarray(jax.device_get(params["fc6"][k].value)) for k in ("kernel", "bias"))
    expected = images.reshape(3, -1).astype(np.float64) @ kernel + bias
    np.testing.assert_allclose(
        model.apply({"params": params}, images), expected, rtol=1e-4, atol=1e-5
    )


def test_two_towers_need_a_conv_and_a_hidden_layer():
    model = steps.create_model(digits_config("", towers=2, hidden_features=()))
    with pytest.raises(ValueError, match="needs at least one conv layer and one hidden layer"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_bad_width_lists_are_explained():
    with pytest.raises(
        ValueError,
        match=r"config.conv_features=\('64;128',\) is not a tuple of layer widths.*\(\) for no such layers",
    ):
        steps.create_model(digits_config("", conv_features=("64;128",)))
    model = steps.create_model(digits_config("", conv_features=(64, 128, 192, 192, 128, 64)))
    with pytest.raises(ValueError, match="at most 5 positive kernel counts"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_smoothed_is_a_trailing_mean():
    values = np.random.default_rng(0).random(20)
    expected = [values[max(0, i - 4) : i + 1].mean() for i in range(20)]
    np.testing.assert_allclose(ablate.smoothed(values, 5), expected)
    assert ablate.steps_to_reach([1, 2, 3, 4], [0.9, 0.5, 0.2, 0.1], 0.25) == 3
    assert ablate.steps_to_reach([1, 2], [0.9, 0.5], 0.25) is None


def test_own_best_rate_is_the_lowest_final_training_loss_smaller_on_a_tie():
    variant = ablate.Variant("v", "activation", {"activation": "tanh"}, (0.01, 0.03, 0.1))

    def swept(losses):
        return {
            variant.at_rate(rate).name: {"runs": [{"final_train_loss": loss}]}
            for rate, loss in zip(variant.own_rates, losses)
        }

    assert ablate.own_best_rate(variant, swept([0.9, 0.2, 0.5])) == 0.03
    assert ablate.own_best_rate(variant, swept([0.4, 0.9, 0.4])) == 0.01
    assert variant.at_rate(0.03).overrides == {"activation": "tanh", "learning_rate": 0.03}
    assert variant.at_rate(0.03).own_rates == ()


def test_combine_refuses_conflicting_overrides():
    a = ablate.Variant("a", "modern", {"learning_rate": 0.1})
    b = ablate.Variant("b", "modern", {"learning_rate": 0.2})
    with pytest.raises(ValueError, match="sets learning_rate=0.2"):
        ablate.combine([a, b])
    assert ablate.combine([a, ablate.Variant("c", "modern", {"residual": True})]).overrides == {
        "learning_rate": 0.1,
        "residual": True,
    }


def test_unknown_variant_names_list_the_known_ones():
    with pytest.raises(ValueError, match="choose from: baseline, tanh_instead_of_relu"):
        ablate.selected_variants(["baseline", "no_such_thing"])
    assert [v.name for v in ablate.selected_variants(["tanh_instead_of_relu", "baseline"])] == [
        "baseline",
        "tanh instead of ReLU",
    ]


@pytest.mark.slow
def test_study_writes_table_and_pictures_and_reads_finished_runs_back(tfds_data_dir, tmp_path):
    """A tiny budget: baseline, tanh and one modern change (which decides the best combination), one seed.

    Evaluated on the first 40 test digits: the table reads whatever the runs measured.
    """
    base = digits_config(tfds_data_dir, eval_split=FIRST_40_TEST_DIGITS)
    baseline, tanh, smoothing = ablate.selected_variants(
        ["baseline", "tanh_instead_of_relu", "label_smoothing_0_1"]
    )
    # tanh's own-rate row from a one-rate sweep: one run more, read back as the row's seed 0
    variants = (baseline, dataclasses.replace(tanh, own_rates=(0.02,)), smoothing)
    out, report = str(tmp_path / "out"), str(tmp_path / "report")
    study = dict(
        seeds=1,
        steps=4,
        batch_size=8,
        examples_per_class=2,
        learning_rate=0.01,
        target=0.9,
        out=out,
        report_dir=report,
        variants=variants,
    )
    results = ablate.run_study(base, **study)

    names = list(results)
    assert names[:4] == [
        "baseline",
        "tanh instead of ReLU",
        "tanh instead of ReLU @ lr 0.02",
        "label smoothing 0.1",
    ]
    (combination,) = names[4:]
    own_config = json.load(
        open(os.path.join(out, "runs", "tanh_instead_of_relu_lr_0_02", "seed0", "config.json"))
    )
    assert own_config["learning_rate"] == 0.02 and own_config["activation"] == "tanh"
    baseline_error = results["baseline"]["runs"][0]["test_error"]
    smoothing_error = results["label smoothing 0.1"]["runs"][0]["test_error"]
    # The only modern change is the combination, whether or not it beat the baseline.
    assert combination == ablate.BEST_COMBINATION + ": label smoothing 0.1"
    # same config, same seed: same run
    assert results[combination]["runs"][0]["test_error"] == smoothing_error

    # Numbers in the table are the runs' own metrics.jsonl values.
    records = [
        json.loads(line)
        for line in open(os.path.join(out, "runs", "baseline", "seed0", "metrics.jsonl"))
    ]
    (final,) = [r for r in records if "val_top1_error" in r]
    assert final["step"] == 4 and final["val_top1_error"] == baseline_error
    assert [r["step"] for r in records if "top1_error" in r] == [1, 2, 3, 4]  # every step logged
    table = open(os.path.join(report, "ablation.md")).read()
    assert f"| baseline | - | 1,842,570 | {100 * baseline_error:.1f}% ± 0.0 |" in table
    assert table.count("\n") == 2 + len(names)
    for picture in ("ablation.png", "relu_vs_tanh.png"):
        with open(os.path.join(report, picture), "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(os.path.join(out, "runs", "baseline", "seed0", "checkpoints"))
    saved = json.load(open(os.path.join(report, "results.json")))
    assert (
        saved["protocol"]["num_train_steps"] == 4
        and saved["protocol"]["train_examples_per_class"] == 2
    )

    # A second call reads the finished runs back instead of training them again.
    stamp = os.path.getmtime(os.path.join(out, "runs", "baseline", "seed0", "metrics.jsonl"))
    again = ablate.run_study(base, **study)
    assert (
        os.path.getmtime(os.path.join(out, "runs", "baseline", "seed0", "metrics.jsonl")) == stamp
    )
    assert again["baseline"]["runs"] == results["baseline"]["runs"]
    # Another protocol in the same --out is refused, not read back into the same table.
    with pytest.raises(
        ConfigError,
        match=r"baseline/seed0 holds a finished run of another config "
        r"\(learning_rate: 0\.01 in .*, 0\.02 here\)",
    ):
        ablate.run_study(base, **dict(study, learning_rate=0.02, report_dir=""))


def test_the_old_module_name_runs_the_study():
    """`python -m alexnet_jax.ablate` still works in a checkout: the same command, the same names."""
    from alexnet_jax import ablate as alias

    assert alias.main is ablate.main and alias.define_flags is ablate.define_flags
    assert alias.VARIANTS is ablate.VARIANTS and alias.run_study is ablate.run_study


@pytest.mark.parametrize(
    "values, baseline",
    [([1.0, 2.0, 3.5], [0.0, 1.0, 2.0, 2.5]), ([0.12, 0.15, 0.11, 0.14, 0.16], [0.2, 0.35, 0.27])],
)
def test_the_difference_interval_equals_scipys_welch_t_interval(values, baseline):
    from scipy import stats

    difference, low, high = runner.difference_interval(values, baseline)
    reference = stats.ttest_ind(values, baseline, equal_var=False).confidence_interval(0.95)
    assert difference == pytest.approx(np.mean(values) - np.mean(baseline), abs=1e-12)
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_the_difference_interval_by_hand_and_the_tables_verdict():
    # [1, 2, 3] - [0, 1, 2]: difference 1, each variance 1, standard error sqrt(2/3), Welch
    # degrees of freedom (2/3)^2 / (2 * (1/3)^2 / 2) = 4, t(0.975, 4) = 2.7764451.
    difference, low, high = runner.difference_interval([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    half = 2.7764451052 * (2 / 3) ** 0.5
    assert (difference, low, high) == pytest.approx((1.0, 1.0 - half, 1.0 + half), abs=1e-8)
    assert runner.difference_interval([1.0], [0.0, 1.0]) is None  # one seed: no interval

    def runs(errors):
        return {
            "overrides": {},
            "params": 1,
            "runs": [
                dict(test_error=e, final_train_loss=0.1, steps_to_target=None, steps_per_second=1.0)
                for e in errors
            ],
        }

    table = ablate.summarize(
        {
            "baseline": runs([0.10, 0.11, 0.12]),
            "clearly worse": runs([0.30, 0.31, 0.32]),
            "the same": runs([0.09, 0.12, 0.11]),
            "one seed": runs([0.2]),
        },
        target=0.5,
    )
    lines = table.splitlines()
    assert lines[2].endswith("| - | - |")
    # the case above scaled by 0.01: 20 +- 2.27 percentage points
    assert lines[3].endswith("| +20.0 [+17.7, +22.3] effect | - |")
    assert "effect" not in lines[4] and lines[4].endswith("] | - |")
    assert lines[5].endswith("| needs 2+ seeds | - |")
    # without a baseline row there is nothing to compare with
    alone = ablate.summarize({"clearly worse": runs([0.30, 0.31, 0.32])}, target=0.5)
    assert alone.splitlines()[2].endswith("| no baseline row | - |")
