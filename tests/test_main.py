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


def test_default_config_runs():
    result = run_main("--steps=1", "--config.batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "variant='small'" in result.stderr
    assert "1,842,570" in result.stderr
    assert "forward/backward 1/1" in result.stderr


def test_misspelt_override_fails():
    result = run_main("--steps=0", "--config.batch_sise=8")
    assert result.returncode != 0
    assert 'Did you mean "batch_size"' in result.stderr
