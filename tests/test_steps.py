"""Durations in a config: intervals given in epochs keep their meaning when the batch size changes."""

import pytest

from alexnet_jax.errors import ConfigError
from alexnet_jax.steps import interval_steps, num_train_steps
from configs import cifar10, default, imagenet, smoke


def test_an_interval_in_epochs_follows_the_batch_size():
    config = default.get_config()  # evaluation every 10 epochs of the 1,437 training digits
    for batch_size, per_epoch in ((64, 22), (32, 44), (128, 11)):
        config.batch_size = batch_size
        _, steps_per_epoch = num_train_steps(config, 1437)
        assert steps_per_epoch == per_epoch == 1437 // batch_size
        assert interval_steps(config, "eval_every", steps_per_epoch) == 10 * per_epoch
        assert interval_steps(config, "checkpoint_every", steps_per_epoch) == 10 * per_epoch
    config.eval_every_epochs = 0.25  # rounded to whole steps, never below one
    assert interval_steps(config, "eval_every", 11) == 3
    assert interval_steps(config, "eval_every", 1) == 1


def test_an_interval_in_steps_and_none_at_all():
    config = smoke.get_config()
    assert interval_steps(config, "eval_every", 22) == 6
    config.eval_every_steps = 0
    assert interval_steps(config, "eval_every", 22) == 0  # only after the last step


def test_the_shipped_configs_intervals():
    # ImageNet: one evaluation per epoch of 1,281,167 images in batches of 128 (10,009 steps).
    config = imagenet.get_config()
    _, per_epoch = num_train_steps(config, 1_281_167)
    assert interval_steps(config, "eval_every", per_epoch) == 10_009
    assert interval_steps(config, "checkpoint_every", per_epoch) == 2_000
    config = cifar10.get_config()  # every 5 epochs of 50,000 images in batches of 128
    _, per_epoch = num_train_steps(config, 50_000)
    assert interval_steps(config, "eval_every", per_epoch) == 5 * 390


def test_both_units_at_once_is_a_config_error_naming_the_fix():
    config = default.get_config()
    config.eval_every_steps = 100
    with pytest.raises(
        ConfigError, match=r"eval_every_steps=100 and eval_every_epochs=10.0 are both"
    ):
        interval_steps(config, "eval_every", 22)


def test_a_config_saved_before_epochs_existed_uses_its_steps():
    config = {"eval_every_steps": 230}  # config.json of an older run: no eval_every_epochs
    assert interval_steps(config, "eval_every", 22) == 230
