"""The Figure-1 study (experiments/figure1.py): its learning-rate sweep picks the fastest rate on a
case whose answer is known, its table states the ratio, and its protocol is the paper's."""

import json
import math
import os

import flax.linen as nn
import pytest
from fake_data import FIRST_40_TEST_DIGITS, digits_config

from alexnet_jax.errors import ConfigError
from configs import default
from experiments import ablate, figure1


def gradient_descent_errors(rate: float, start: float, steps: int) -> list[float]:
    """|x_t| of gradient descent on f(x) = x^2 / 2 from x_0 = start: x_t = (1 - rate)^t start."""
    x, errors = start, []
    for _ in range(steps):
        x -= rate * x
        errors.append(min(abs(x), 1e9))
    return errors


def test_the_sweep_picks_the_rate_that_reaches_the_target_first():
    # Steps to |x| <= 0.25 are ceil(log(0.25 / start) / log|1 - rate|): 0.1 -> 14 and 12 (two
    # starts), 0.5 -> 2 and 2, 0.9 and 1.1 -> 1 and 1 (a tie: the smaller wins), 1.5 -> 2,
    # 2.5 diverges; so 0.9.
    rates = (0.1, 0.5, 0.9, 1.1, 1.5, 2.5)
    steps_by_rate = {}
    for rate in rates:
        steps_by_rate[rate] = []
        for start in (1.0, 0.8):
            errors = gradient_descent_errors(rate, start, 40)
            steps_by_rate[rate].append(ablate.steps_to_reach(range(1, 41), errors, 0.25))
    assert steps_by_rate[0.1] == [math.ceil(math.log(0.25 / s) / math.log(0.9)) for s in (1.0, 0.8)]
    assert steps_by_rate[2.5] == [None, None]
    assert figure1.fastest_rate(steps_by_rate) == 0.9
    # A rate one of whose seeds never reaches the target does not count, however fast the other.
    assert figure1.fastest_rate({0.01: [30, 32], 0.1: [5, None], 1.0: [None, None]}) == 0.01
    with pytest.raises(ConfigError, match="train longer"):
        figure1.fastest_rate({0.1: [None], 1.0: [None]})


def test_the_table_gives_the_ratio_of_the_mean_steps():
    sweep = {"relu": {0.01: [40], 0.1: [20]}, "tanh": {0.01: [90], 0.1: [None]}}
    chosen = {"relu": 0.1, "tanh": 0.01}
    results = {
        "relu": [{"steps_to_target": s} for s in (20, 30, 25)],
        "tanh": [{"steps_to_target": s} for s in (90, 60, 75)],
    }
    table = figure1.summarize(sweep, chosen, results, 0.25, window=10)
    assert "| tanh | 90 | - |" in table
    assert "| relu | 0.1 | 20, 30, 25 | 25.0 ± 5.0 |" in table
    # 75 / 25 = 3; seed by seed 90/20 = 4.5, 60/30 = 2, 75/25 = 3
    assert "tanh / ReLU: 3.00x the steps" in table and "2.00x-4.50x" in table


def test_the_protocol_is_four_layers_and_no_regularization():
    config = figure1.figure1_config(default.get_config(), "tanh", 0.05, 3, 100, 16)
    assert (config.activation, config.learning_rate, config.seed) == ("tanh", 0.05, 3)
    assert tuple(config.conv_features) == (32, 32, 64) and tuple(config.hidden_features) == ()
    assert config.dropout_rate == config.weight_decay == config.pca_lighting_std == 0.0
    assert config.train_augment == "none" and config.normalization == "none"
    assert config.schedule == "constant" and config.train_examples_per_class == 0
    params = ablate.abstract_params(config)
    assert sorted(params) == ["conv1", "conv2", "conv3", "fc6"]  # four layers with weights
    assert nn.unbox(params)["fc6"]["kernel"].shape == (7 * 7 * 64, 10)  # 32 -> 15 -> 7 by the pools


@pytest.mark.slow
def test_a_diverging_rate_ends_its_run_and_the_sweep_goes_on(tfds_data_dir, tmp_path, monkeypatch):
    """ReLU only, one seed, 5 steps: a rate of 1e12 overflows within a few steps; the study finishes."""
    monkeypatch.setattr(figure1, "ACTIVATIONS", ("relu",))
    base = digits_config(tfds_data_dir, eval_split=FIRST_40_TEST_DIGITS)
    out = str(tmp_path / "out")
    study = dict(seeds=1, steps=5, batch_size=8, sweep_seeds=1, out=out, window=1)
    # target 100%: every run reaches it at its first step, a tie that the smaller rate wins
    result = figure1.run_study(base, learning_rates=(0.01, 1e12), target=1.0, **study)
    assert result["chosen"] == {"relu": 0.01} and result["sweep"]["relu"] == {0.01: [1], 1e12: [1]}

    def last_step(rate):
        path = os.path.join(out, "runs", f"relu_lr{rate:g}", "seed0", "metrics.jsonl")
        return [r for r in map(json.loads, open(path)) if "skipped_steps" in r][-1]

    assert last_step(1e12)["step"] == 5 and last_step(1e12)["skipped_steps"] >= 1
    assert last_step(0.01)["skipped_steps"] == 0
    assert os.path.exists(os.path.join(out, "figure1.md"))
    with pytest.raises(ConfigError, match="--window"):
        figure1.run_study(base, learning_rates=(0.01,), target=1.0, **{**study, "window": 6})
