"""Independent implementations that the tests and benchmarks compare alexnet_jax against.

`torch_alexnet`: the AlexNets again in PyTorch, written from the paper and
torchvision's source; `hlo`: the collectives of compiled XLA HLO, with the
mesh axes they span. Nothing here imports alexnet_jax, and none of it is part
of the installed wheel (pyproject.toml packages alexnet_jax only): run from
the repository root, or with it on the path.
"""
