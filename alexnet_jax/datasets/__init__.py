"""Datasets the package reads itself: tfds builders (importing this module registers them) and the
CIFAR-10 archive reader (`alexnet_jax.datasets.cifar10`, imported where used)."""

from alexnet_jax.datasets.resized_copy import ResizedCopy  # noqa: F401  (registers 'resized_copy')
from alexnet_jax.datasets.sklearn_digits import SklearnDigits  # noqa: F401  (registers 'sklearn_digits')
