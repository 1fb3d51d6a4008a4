"""The input pipeline is `alexnet_jax.data`; this name stays for existing code."""

from alexnet_jax.data import *  # noqa: F403
