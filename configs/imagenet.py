"""The paper: two-tower AlexNet on ImageNet (ILSVRC-2012), batch 128.

Command:
  python main.py --config=configs/imagenet.py

Today `main.py` prints the paper model (60,965,224 parameters, 55-27-13-6
feature maps) and times one forward/backward pass at batch 128 on a synthetic
batch; ImageNet training arrives with the input and training pipelines.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "imagenet2012"
    config.image_size = 224
    config.num_classes = 1000
    config.batch_size = 128
    config.seed = 0
    config.half_precision = False

    # Model: the paper's choices, see REFERENCE in the README.
    config.model = "paper"
    config.towers = 2
    config.normalization = "lrn"
    config.norm_position = "before_pool"
    config.pooling = "overlapping"
    config.dropout_rate = 0.5
    config.activation = "relu"
    config.init_scheme = "paper"
    return config
