"""tfds builders shipped with the package; importing this module registers them."""

from alexnet_jax.datasets.sklearn_digits import SklearnDigits  # noqa: F401  (registers 'sklearn_digits')
