"""Process-wide settings, made once: TensorFlow's view of the devices and the libraries' log noise.

`alexnet_jax/__init__.py` sets `TF_CPP_MIN_LOG_LEVEL=3` (it must precede
TensorFlow's import); the data layer calls `hide_accelerators_from_tensorflow`
when it loads; the entry points (`main.py`, `predict`, `visualize`, the
studies) call `quiet_library_logs`.
"""

import logging as python_logging
import os

from absl import logging

_QUIETED: set[str] = set()


def hide_accelerators_from_tensorflow() -> None:
    """Lets TensorFlow see no GPU, so that tf.data reserves none of the memory JAX needs.

    A GPU build of TensorFlow (Colab has one) otherwise claims most of every GPU's memory when the
    input pipeline starts. Only tf.data runs in TensorFlow here, on the CPU. Once TensorFlow has
    started its devices (the caller ran TensorFlow ops first) they cannot be hidden: a warning says so.
    """
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:  # "Visible devices cannot be modified after being initialized"
        logging.warning("TensorFlow already started its devices and may hold GPU memory: %s", error)


def quiet_library_logs() -> None:
    """Hides INFO lines that are not news: JAX's search for backends, tfds's line per file opened.

    Warnings and errors of both still show. Safe to call more than once.
    """
    python_logging.getLogger("jax._src.xla_bridge").setLevel(python_logging.WARNING)
    import tensorflow_datasets

    _quiet_info_from(tensorflow_datasets)


def _quiet_info_from(module) -> None:
    root = os.path.dirname(os.path.abspath(module.__file__))
    if root in _QUIETED:
        return
    _QUIETED.add(root)
    logging.get_absl_logger().addFilter(
        lambda record: (
            record.levelno >= python_logging.WARNING
            or not os.path.abspath(record.pathname).startswith(root)
        )
    )
