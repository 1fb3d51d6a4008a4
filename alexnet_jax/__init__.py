"""alexnet_jax: a faithful, fast and readable AlexNet in JAX/Flax."""

__version__ = "0.1.0"
