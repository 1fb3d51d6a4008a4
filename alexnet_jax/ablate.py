"""The ablation study moved to `experiments/ablate.py`: `python -m experiments.ablate`.

This name still runs it (`python -m alexnet_jax.ablate`) from a repository checkout, where
`experiments` can be imported; an installed package does not include the studies.
"""

from alexnet_jax.errors import MissingPackageError

try:
    from experiments import ablate as _study
except ModuleNotFoundError as error:
    if error.name not in ("experiments", "experiments.ablate"):
        raise
    raise MissingPackageError(
        "The ablation study lives in the repository's experiments/ folder, which the installed "
        "package does not include: run `python -m experiments.ablate` from a checkout of the "
        "repository."
    ) from None

from experiments.ablate import *  # the study's public names, under the old one

if __name__ == "__main__":
    from absl import app, flags, logging

    _study.define_flags()
    flags.adopt_module_key_flags(_study)  # the study's flags in this command's --help
    logging.set_verbosity(logging.INFO)
    app.run(_study.main)
