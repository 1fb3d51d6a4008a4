"""`python main.py` end to end in a subprocess, as a user runs it."""

import os

import pytest
from helpers import run_main

from configs import default

pytestmark = pytest.mark.slow  # every test starts main.py


def test_smoke_config_trains_evaluates_checkpoints_and_resumes(tmp_path):
    args = (
        "--config=configs/smoke.py",
        f"--config.data_dir={tmp_path / 'data'}",
        f"--workdir={tmp_path / 'run'}",
    )
    result = run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "variant='small'" in log and "1,842,570" in log
    assert "starting from scratch: 12 steps" in log
    assert "step 12/12" in log and "images/s" in log and "ETA" in log
    assert "eval at step 12" in log and "(360 examples)" in log
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["12", "6"]
    assert os.path.exists(tmp_path / "run" / "metrics.jsonl")
    assert os.path.exists(tmp_path / "run" / "training_curves.png")

    again = run_main(*args, "--config.num_train_steps=14")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from the checkpoint at step 12 of 14" in again.stderr
    assert "step 14/14" in again.stderr and "step 4/" not in again.stderr


NOT_FOUND = (
    "not found (paths are relative to the current directory, e.g. --config=configs/imagenet.py)"
)


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--config.modle=paper"],
            "--config.modle: the config has no field 'modle'; did you mean 'model'?",
        ),
        (
            ["--config=configs/imagenet.py", "--config.batch_sise=8"],
            "--config.batch_sise: the config has no field 'batch_sise'; did you mean 'batch_size'?",
        ),
        (
            ["--config.qqq=1"],
            "--config.qqq: the config has no field 'qqq'; its fields are in configs/default.py",
        ),
        (["--config=configs/nonexistent.py"], f"--config: configs/nonexistent.py {NOT_FOUND}"),
        (
            ["--config", "configs/nonexistent.py", "--config.batch_size=8"],
            f"--config: configs/nonexistent.py {NOT_FOUND}",
        ),
        (
            ["--config.batch_size=abc"],
            (
                "--config.batch_size=abc: invalid literal for int() with base 10: 'abc'; "
                f"expected int like the config's {default.get_config().batch_size}"
            ),
        ),
        (["--mode=fit"], "--mode=fit: value should be one of <train|eval|prepare>"),
        (
            ["--work_dir=x"],
            (
                "Unknown command line flag 'work_dir'. Did you mean: workdir ? "
                "(python main.py --helpshort lists the flags)"
            ),
        ),
    ],
)
def test_command_line_mistake_is_one_line_and_exit_status_2(args, line):
    # Reported before JAX and TensorFlow are imported: about 0.2 s each (a run that imports them: 7 s).
    result = run_main(*args)
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"error: {line}"])


def test_misspelt_field_of_a_nested_section_is_named_in_full(tmp_path):
    config = tmp_path / "nested.py"
    config.write_text(
        "import ml_collections\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict({'optim': {'lr': 0.1, 'momentum': 0.9}})\n"
    )
    result = run_main(f"--config={config}", "--config.optim.lrr=1")
    line = (
        "error: --config.optim.lrr: the config has no field 'optim.lrr'; did you mean 'optim.lr'?"
    )
    assert (result.returncode, result.stderr.splitlines()) == (2, [line])


@pytest.mark.parametrize(
    "statement",
    [
        "raise KeyError('from_my_config')",  # the exception ml_collections raises for an unknown field
        "raise ValueError('from_my_config')",  # absl wraps it in a flag error
        "open('/nonexistent/from_my_config.txt')",  # ml_collections defers it to the config's first use
    ],
)
def test_exception_inside_get_config_keeps_its_traceback(tmp_path, statement):
    config = tmp_path / "buggy.py"
    config.write_text(f"def get_config():\n    {statement}\n")
    result = run_main(f"--config={config}", "--config.modle=1")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert (
        f'File "{config}", line 2, in get_config' in result.stderr
        and "from_my_config" in result.stderr
    )
    assert "error: --config" not in result.stderr


def test_missing_imagenet_tars_is_one_clear_error(tmp_path):
    result = run_main(
        "--config=configs/imagenet.py",
        f"--config.data_dir={tmp_path}",
        f"--workdir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert "error: ImageNet (ILSVRC2012) is not prepared" in result.stderr
    assert "--config.manual_dir" in result.stderr
    assert "Traceback" not in result.stderr
