"""Studies run with the package: the ablation (`python -m experiments.ablate`) and the few-label
transfer study (`python -m experiments.transfer`), sharing `experiments.runner`.

They are scripts on top of `alexnet_jax`, run from a repository checkout (they read its
`configs/`); they are not part of the installed wheel.
"""
