"""CIFAR-10: the `small` AlexNet on 32x32 natural images.

Command:
  python main.py --config=configs/cifar10.py

Data: tfds `cifar10` (50,000 train / 10,000 test, 32x32), downloaded once
(about 163 MB) into --config.data_dir on a machine with internet access.
Augmentation: pad-4 random crop, flip, PCA lighting, colour statistics
computed from the training set.

Today `main.py` prints the model, prepares the data, measures the input
pipeline and times forward/backward passes on real batches; training
arrives with the training pipeline.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "cifar10"
    config.num_classes = 10
    config.batch_size = 128
    config.seed = 0
    config.half_precision = False

    # Input pipeline: alexnet_jax.input_pipeline.InputConfig fields.
    config.data_dir = ""  # tfds data dir; "" = ~/tensorflow_datasets
    config.manual_dir = ""  # ImageNet tars; "" = <data_dir>/downloads/manual
    config.folder_root = ""  # for dataset="image_folder"
    config.train_split = ""  # "" = the dataset's own
    config.eval_split = ""
    config.image_size = 32
    config.resize_size = 32
    config.train_augment = "pad_crop"
    config.eval_crop = "center"  # or "ten_crop", the paper's test
    config.pca_lighting_std = 0.1
    config.color_stats = "dataset"
    config.on_corrupt_image = "error"
    config.shuffle_buffer = 10_000

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
