"""`python main.py` runs end to end in a subprocess, as a user runs it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_default_config_runs(tmp_path):
    result = run_main("--steps=1", "--config.batch_size=8", f"--config.data_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "variant='small'" in result.stderr
    assert "1,842,570" in result.stderr
    assert "data: digits, 1437 training and 360 evaluation examples, 10 classes" in result.stderr
    assert "input pipeline: 10 batches of 8" in result.stderr
    assert "forward/backward 1/1" in result.stderr


def test_missing_imagenet_tars_is_one_clear_error(tmp_path):
    result = run_main("--config=configs/imagenet.py", f"--config.data_dir={tmp_path}")
    assert result.returncode == 1
    assert "error: ImageNet (ILSVRC2012) is not prepared" in result.stderr
    assert "--config.manual_dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelt_override_fails():
    result = run_main("--steps=0", "--config.batch_sise=8")
    assert result.returncode != 0
    assert 'Did you mean "batch_size"' in result.stderr
