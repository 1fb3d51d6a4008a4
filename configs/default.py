"""Default configuration: the `small` AlexNet on the embedded digits data set.

Command:
  python main.py                                  # same as --config=configs/default.py

Data: the embedded `sklearn_digits` data set (scikit-learn's 1,797 real
handwritten digits, upscaled to 32x32 RGB; 1,437 train / 360 test), prepared
offline on first use. Augmentation: pad-4 random crop, flip, PCA lighting,
colour statistics computed from the training set.

Today `main.py` prints the model, prepares the data, measures the input
pipeline and times forward/backward passes on real batches; training
arrives with the training pipeline.
Measured: 2-core CPU, see README "Performance".
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "digits"
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
