"""Test setup: 8 fake CPU devices, quiet TensorFlow, torch imported before TensorFlow.

The environment must be set before JAX or TensorFlow is imported anywhere.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _flags += " --xla_force_host_platform_device_count=8"
# XLA:CPU aborts the whole process ("Fatal Python error: Aborted") when its devices do not all
# reach a collective within 40 s. With 8 device threads on 2 cores, beside the other worker's
# multi-process runs, an evaluation's psum once took longer and killed a test worker.
if "xla_cpu_collective_call_terminate_timeout_seconds" not in _flags:
    _flags += " --xla_cpu_collective_call_terminate_timeout_seconds=300"
if "xla_backend_optimization_level" not in _flags:
    _flags += " --xla_backend_optimization_level=1"  # helpers.COMPILE_FLAGS: the same bits, faster
os.environ["XLA_FLAGS"] = _flags.strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Importing torch after TensorFlow has crashed the interpreter; import it first.
import pytest
import torch  # noqa: F401

import alexnet_jax  # noqa: F401  (before TensorFlow: its start-up then skips Keras, see the package)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any tfds download attempt fails at once instead of hanging on the missing network."""
    import tensorflow_datasets as tfds

    def refuse(*args, **kwargs):
        raise RuntimeError("A test tried to download data; tests must build or mock their data.")

    for name in ("download", "download_and_extract", "download_kaggle_data"):
        monkeypatch.setattr(tfds.download.DownloadManager, name, refuse, raising=False)


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    """One tfds data dir for the session, so the digits builder prepares once."""
    return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """One persistent XLA compilation cache for the test run: both workers and every subprocess.

    The tests compile the same few train and eval steps again and again (each run of the loop
    jits its own), and on 2 cores a compilation takes seconds. The cache lives in the run's
    temporary directory, so every run starts empty and a cached program never outlives the code
    that made it. A cache hit is the same executable, so results are unchanged. Programs that
    compile in under 0.2 s are not kept: keeping every one (0 s) made the multi-process and
    reliability tests slower (one run each: 242 s against 227 s), not faster.
    """
    import jax

    root = tmp_path_factory.getbasetemp()
    # With xdist each worker's basetemp is <run>/popen-gwN: share the run's directory.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    directory = str(root / "jax_compilation_cache")
    settings = {
        "JAX_COMPILATION_CACHE_DIR": directory,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
    }
    os.environ.update(settings)  # for the subprocesses
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    yield directory


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests that share a module-scoped fixture run on one xdist worker, so it is built once.

    With `--dist loadgroup` (pyproject.toml) every other test goes to whichever worker is free.
    The slow tests are handed out first and the quick ones fill the end, so neither worker idles
    while the other finishes a long test. Runs before xdist reads the `xdist_group` marks.
    """
    for item in items:
        definitions = item._fixtureinfo.name2fixturedefs
        shared = sorted(name for name, defs in definitions.items() if defs[-1].scope == "module")
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{'+'.join(shared)}"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable
