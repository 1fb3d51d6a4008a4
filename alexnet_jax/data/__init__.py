"""Input pipelines: tfds -> tf.data -> numpy batches, with the paper's augmentation.

Three modules, each importing only the ones above it:
  sources   where examples come from: `InputConfig`, `load_data` -> `Data` (the
            datasets, class selection, colour statistics), `DataError`;
  augment   what happens to one example: `train_image`, `eval_image` and their
            crops, flips, colour jitter and PCA lighting;
  batching  how batches are formed: `train_dataset`, `eval_dataset` (shuffling,
            stateless seeds, padding and masks, the rows of a process).

Every batch is a dict of numpy arrays:
  image: (B, S, S, 3) float32 or bfloat16, normalized with the dataset's
         per-channel mean and std; (B, 10, S, S, 3) for the 10-crop test;
  label: (B,) int32;
  mask:  (B,) bool, False on the padding that completes the last
         evaluation batch (training batches are all True).
With `normalized=False` (what the trainer asks for) image stays the uint8 crop(s) and training
batches carry `lighting` (B, 3) float32, PCA lighting's RGB shift per image:
`alexnet_jax.pixels` does the float arithmetic on the devices, with the same result.

Datasets (`InputConfig.dataset`):
  'digits'        the embedded `sklearn_digits` builder (no download, 32x32);
  'imagenet2012'  tfds `imagenet2012`, prepared from the user's own
                  ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar;
  'cifar10'       the official cifar-10-binary.tar.gz in manual_dir, read into memory,
                  or tfds `cifar10` if already prepared in data_dir; never downloaded;
  'image_folder'  `root/<split>/<class>/<image>` trees of JPEG/PNG/GIF/BMP files.
With `resized_copy=True`, 'imagenet2012' and 'image_folder' are read from their resized copy
(`alexnet_jax.datasets.resized_copy`: every image once through `base_image`, a JPEG of
`resize_size`, or its raw pixels with `resized_copy_format='raw'`), which `prepare_data`
(`main.py --mode=prepare`) writes.

Training augmentation (`train_augment`), on images in [0, 1]:
  'paper'      shorter side to `resize_size`, central square crop (done once
               and cached for in-memory datasets), random `image_size` crop,
               horizontal flip, PCA lighting (Krizhevsky et al. 2012, 4.1);
  'inception'  the tutorial's: random resized crop (area 8%-100%, aspect 3/4-4/3)
               of the decoded image, flip, colour jitter (brightness, contrast,
               saturation 0.4, hue 0.1), optional PCA lighting;
  'pad_crop'   the 32x32 recipe: zero-pad 4 pixels, random `image_size` crop,
               flip, optional PCA lighting;
  'none'       the evaluation's centre crop.
`horizontal_flip=False` leaves out the flips of the first three (for images
whose mirror image is not of the same class, such as digits).
Evaluation (`eval_crop`): 'center' (shorter side to `resize_size`, central
`image_size` crop) or 'ten_crop' (the four corners and the centre of the
`resize_size` square, and their mirror images: the paper's test).

Randomness is stateless: the augmentation of the example at global position g
of the training stream uses the seed (seed, g), and epoch e is shuffled with
(seed, e). Same seed -> same batches, and `train_dataset(start_step=N)`
yields exactly what an uninterrupted run yields from step N on.
"""

from alexnet_jax.data import augment, batching, sources
from alexnet_jax.data.augment import *  # noqa: F403
from alexnet_jax.data.batching import *  # noqa: F403
from alexnet_jax.data.sources import *  # noqa: F403  (first: it sets TensorFlow up)

__all__ = [*sources.__all__, *augment.__all__, *batching.__all__]
