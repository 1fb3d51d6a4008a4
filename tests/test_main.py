"""`python main.py` end to end in a subprocess, as a user runs it."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_smoke_config_trains_evaluates_checkpoints_and_resumes(tmp_path):
    args = ("--config=configs/smoke.py", f"--config.data_dir={tmp_path / 'data'}", f"--workdir={tmp_path / 'run'}")
    result = run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "variant='small'" in log and "1,842,570" in log
    assert "starting from scratch: 12 steps" in log
    assert "step 12/12" in log and "images/s" in log and "ETA" in log
    assert "eval at step 12" in log and "(360 examples)" in log
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["12", "6"]
    assert os.path.exists(tmp_path / "run" / "metrics.jsonl")

    again = run_main(*args, "--config.num_train_steps=14")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from the checkpoint at step 12 of 14" in again.stderr
    assert "step 14/14" in again.stderr and "step 4/" not in again.stderr


def test_misspelt_override_fails():
    result = run_main("--config.batch_sise=8")
    assert result.returncode != 0
    assert 'Did you mean "batch_size"' in result.stderr


def test_missing_imagenet_tars_is_one_clear_error(tmp_path):
    result = run_main("--config=configs/imagenet.py", f"--config.data_dir={tmp_path}", f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert "error: ImageNet (ILSVRC2012) is not prepared" in result.stderr
    assert "--config.manual_dir" in result.stderr
    assert "Traceback" not in result.stderr
