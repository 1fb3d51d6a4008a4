"""A user's mistake is one clear line; a bug (here, in a model extension) keeps its traceback."""

import pytest
from helpers import run_python

from alexnet_jax import (
    checkpoints,
    distributed,
    errors,
    input_pipeline,
    pretrained,
    sharding,
    train,
)

# main.py run as `python main.py`, after replacing LRN inside the model by a function that fails
# the way a bug in a researcher's new layer would.
MAIN_WITH_A_BUG = """
import runpy, sys
from alexnet_jax import models

def broken_lrn(*args, **kwargs):
    raise ValueError("a bug inside the model")  # main.py once made any ValueError one line

models.local_response_norm = broken_lrn
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
"""


def test_every_error_meant_for_the_user_derives_from_user_error():
    for kind in (
        input_pipeline.DataError,
        sharding.MeshError,
        checkpoints.CheckpointError,
        checkpoints.CheckpointMismatchError,
        train.TrainingError,
        distributed.PeerError,
        pretrained.PretrainedError,
        errors.ConfigError,
        errors.MissingFileError,
        errors.MissingPackageError,
    ):
        assert issubclass(kind, errors.UserError), kind
    # The built-in exceptions callers caught before stay true.
    assert issubclass(errors.ConfigError, ValueError) and issubclass(sharding.MeshError, ValueError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.MissingPackageError, ImportError)
    assert not issubclass(errors.UserError, (ValueError, RuntimeError, OSError))


def test_a_config_mistake_found_while_building_the_model_is_a_config_error():
    import jax
    import jax.numpy as jnp

    from alexnet_jax.models import AlexNet

    with pytest.raises(errors.ConfigError, match="towers=3 does not divide"):
        AlexNet(variant="small", towers=3).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


@pytest.mark.slow
def test_a_bug_in_the_model_keeps_its_traceback(tfds_data_dir, tmp_path):
    args = (
        "--config=configs/smoke.py",
        f"--config.data_dir={tfds_data_dir}",
        f"--workdir={tmp_path / 'run'}",
    )
    result = run_python("-c", MAIN_WITH_A_BUG, *args)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: a bug inside the model" in result.stderr
    assert "in broken_lrn" in result.stderr  # the frame where it happened
    assert "error: a bug" not in result.stderr


@pytest.mark.slow
def test_a_user_error_after_start_up_is_one_line_without_a_traceback(tfds_data_dir, tmp_path):
    result = run_python(
        "main.py",
        "--config=configs/smoke.py",
        "--config.optimizer=adamm",
        f"--config.data_dir={tfds_data_dir}",
        f"--workdir={tmp_path / 'run'}",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Unknown optimizer 'adamm'; valid names are "), last
