"""Test setup: 8 fake CPU devices, quiet TensorFlow, torch imported before TensorFlow.

The environment must be set before JAX or TensorFlow is imported anywhere.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Importing torch after TensorFlow has crashed the interpreter; import it first.
import pytest
import torch  # noqa: F401


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
