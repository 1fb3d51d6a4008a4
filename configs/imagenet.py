"""The paper: two-tower AlexNet on ImageNet (ILSVRC-2012), batch 128.

Command:
  python main.py --config=configs/imagenet.py

Data: tfds `imagenet2012`, prepared once from your own ILSVRC2012_img_train.tar
and ILSVRC2012_img_val.tar in --config.manual_dir (default
~/tensorflow_datasets/downloads/manual). The paper's augmentation: shorter
side 256, centre 256 crop, random 224 crop, flip, PCA lighting (ImageNet
eigenvectors), ImageNet mean/std.

Today `main.py` prints the paper model (60,965,224 parameters, 55-27-13-6
feature maps), prepares the data, measures the input pipeline and times
forward/backward passes; training arrives with the training pipeline.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "imagenet2012"
    config.num_classes = 1000
    config.batch_size = 128
    config.seed = 0
    config.half_precision = False

    # Input pipeline: alexnet_jax.input_pipeline.InputConfig fields.
    config.data_dir = ""  # tfds data dir; "" = ~/tensorflow_datasets
    config.manual_dir = ""  # ImageNet tars; "" = <data_dir>/downloads/manual
    config.folder_root = ""  # for dataset="image_folder"
    config.train_split = ""  # "" = the dataset's own
    config.eval_split = ""
    config.image_size = 224
    config.resize_size = 256
    config.train_augment = "paper"
    config.eval_crop = "center"  # or "ten_crop", the paper's test
    config.pca_lighting_std = 0.1
    config.color_stats = "imagenet"
    config.on_corrupt_image = "error"
    config.shuffle_buffer = 10_000

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
