"""Default configuration: the `small` AlexNet on the embedded digits data set.

Command:
  python main.py                                  # same as --config=configs/default.py

Today `main.py` prints the model (layers, shapes, parameters) and times one
forward/backward pass on a synthetic batch; training on the embedded
digits data set (sklearn's 1,797 handwritten digits, upscaled to 32x32 RGB)
arrives with the training pipeline.
Measured: 2-core CPU, see README "Performance".
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "digits"
    config.image_size = 32
    config.num_classes = 10
    config.batch_size = 128
    config.seed = 0
    config.half_precision = False

    # Model: alexnet_jax.models.AlexNet fields, spelled out.
    config.model = "small"
    config.towers = 1
    config.normalization = "lrn"
    config.norm_position = "before_pool"
    config.pooling = "overlapping"
    config.dropout_rate = 0.5
    config.activation = "relu"
    config.init_scheme = "he"
    return config
