"""Durations in a config: intervals given in epochs keep their meaning when the batch size changes."""

import numpy as np
import pytest
from helpers import COMPILE_FLAGS, run_python, subprocess_env

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


# The suite compiles at XLA:CPU's -O1 (helpers.COMPILE_FLAGS), users' runs at the default -O2. A
# child at the default level trains as this process does; both sides must give the same bits.
_THREE_STEPS = """
import sys
import numpy as np
import jax
from alexnet_jax import sharding, steps
from configs import default, imagenet

def three_steps(config):
    config.batch_size, config.mesh_shape = 8, (1, 1)
    mesh = sharding.create_mesh(config.mesh_shape)
    model = steps.create_model(config, mesh)
    tx = steps.create_optimizer(config, steps_per_epoch=10, total_steps=100)
    state = steps.create_train_state(model, tx, mesh, config.image_size, config.seed)
    _, shardings, _ = steps.state_shardings(model, tx, mesh, config.image_size, config.seed)
    p_train, _ = steps.compile_steps(model, tx, mesh, shardings)
    rng, key = np.random.default_rng(0), sharding.put_replicated(jax.random.key(1), mesh)
    for _ in range(3):
        batch = {
            "image": rng.normal(size=(8, config.image_size, config.image_size, 3)).astype(np.float32),
            "label": rng.integers(0, config.num_classes, 8).astype(np.int32),
            "mask": np.ones(8, bool),
        }
        state, metrics = p_train(state, sharding.host_batch_to_global(batch, mesh), key)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state.params))]

paper = imagenet.get_config()
paper.image_size, paper.hidden_features, paper.num_classes, paper.init_scheme = 63, (512, 512), 10, "he"
leaves = three_steps(default.get_config()) + three_steps(paper)
np.savez(sys.argv[1], *leaves)
"""


@pytest.mark.slow
def test_the_suites_compiler_level_gives_the_default_levels_bits(tmp_path):
    """Three training steps of the small and the two-tower model, at -O1 and at the default."""
    results = {}
    for name, flags in (("suite", COMPILE_FLAGS), ("default", "")):
        out = tmp_path / f"{name}.npz"
        result = run_python("-c", _THREE_STEPS, str(out), env=subprocess_env(XLA_FLAGS=flags))
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(out) as leaves:
            results[name] = [leaves[key] for key in sorted(leaves.files, key=lambda k: int(k[4:]))]
    assert "optimization_level=1" in COMPILE_FLAGS
    assert len(results["suite"]) == len(results["default"]) > 20
    for suite, default_level in zip(results["suite"], results["default"], strict=True):
        np.testing.assert_array_equal(suite, default_level)
