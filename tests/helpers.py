"""Python commands (`main.py` above all) in a child process; reading a run's metrics.jsonl;
comparing parameter trees."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# XLA:CPU's LLVM back end at -O1 instead of its default -O2, in this process (conftest) and its
# children. A test runs few steps of many programs, so compiling dominates, and -O1 compiles about
# 40% faster (the init program of the paper model: 5.1 s -> 2.9 s). LLVM does not reorder
# floating-point arithmetic at either level (XLA turns fast-math off), so the numbers are the same:
# tests/test_steps.py checks that training steps give the same bits as at the default level.
COMPILE_FLAGS = "--xla_backend_optimization_level=1"


def subprocess_env(**extra) -> dict[str, str]:
    """This process's environment for a child: CPU only, one device, quiet TF, ROOT importable,
    COMPILE_FLAGS.

    `extra` overrides, e.g. XLA_FLAGS=f"{COMPILE_FLAGS} --xla_force_host_platform_device_count=4"
    (XLA_FLAGS="": XLA's defaults).
    """
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=COMPILE_FLAGS, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(PYTHONPATH=path, **extra)
    return env


def run_python(*args, cwd=ROOT, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`python *args` to its end, output captured as text; env: subprocess_env() by default."""
    env = subprocess_env() if env is None else env
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_main(*args, cwd=ROOT, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`python main.py *args` to its end, as run_python runs it."""
    return run_python("main.py", *args, cwd=cwd, timeout=timeout, env=env)


def start_main(*args, env=None, **popen_kwargs) -> subprocess.Popen:
    """`python main.py *args` started in ROOT; env: subprocess_env() by default."""
    env = subprocess_env() if env is None else env
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=env, **popen_kwargs)


def read_metrics(workdir, key=None) -> list[dict]:
    """The records of `workdir`/metrics.jsonl in file order; json.loads fails on any bad line.

    With `key`, only the records that have it: "loss" for training steps, "val_loss" for
    evaluations.
    """
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        records = [json.loads(line) for line in file]
    return records if key is None else [record for record in records if key in record]


def largest_difference(a, b) -> float:
    """max |a - b| over every leaf of two parameter trees of the same structure."""
    return max(
        float(np.abs(np.asarray(x) - np.asarray(y)).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
