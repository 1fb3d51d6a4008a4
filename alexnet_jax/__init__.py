"""alexnet_jax: a faithful, fast and readable AlexNet in JAX/Flax."""

import os

# TensorFlow (the input pipeline's tf.data) prints pages of C++ start-up lines
# unless told otherwise before its first import; every module of the package
# runs this first. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
