"""alexnet_jax: a faithful, fast and readable AlexNet in JAX/Flax."""

import importlib.machinery
import os
import sys

# TensorFlow (the input pipeline's tf.data) prints pages of C++ start-up lines
# unless told otherwise before its first import; every module of the package
# runs this first. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _NoKerasWhileTensorFlowStarts:
    """Keeps TensorFlow's own start-up from importing Keras, which alexnet_jax never uses.

    `import tensorflow` imports Keras eagerly when it is installed (tensorflow-cpu requires it),
    and Keras imports scikit-learn and scipy: 2 of TensorFlow's 5-6 s of start-up on 2 CPU cores,
    paid by every `main.py`. While TensorFlow's `__init__` runs, an import of `keras` fails
    with ModuleNotFoundError, which TensorFlow handles as "Keras not installed". Afterwards
    nothing is blocked: `tf.keras` and `import keras` load Keras on first use as usual. Only
    TensorFlow's eager registration of Keras optimizers for SavedModel loading is skipped.
    """

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == "keras":
            tensorflow = getattr(sys.modules.get("tensorflow"), "__spec__", None)
            if getattr(tensorflow, "_initializing", False):
                return importlib.machinery.ModuleSpec(name, cls)
        return None

    @staticmethod
    def create_module(spec):
        raise ModuleNotFoundError(
            f"{spec.name} is not imported while TensorFlow starts", name=spec.name
        )

    @staticmethod
    def exec_module(module):  # never reached: create_module raises
        raise AssertionError(module)


# Once per process (a reload of the package makes a new class of the same name).
if "tensorflow" not in sys.modules and not any(
    getattr(finder, "__name__", None) == _NoKerasWhileTensorFlowStarts.__name__
    for finder in sys.meta_path
):
    sys.meta_path.insert(0, _NoKerasWhileTensorFlowStarts)

__version__ = "0.1.0"
