"""CIFAR-10: the `small` AlexNet on 32x32 natural images.

Command:
  python main.py --config=configs/cifar10.py

Data: CIFAR-10 (50,000 train / 10,000 test, 32x32), never downloaded here.
Download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (170 MB, the
binary version) on any machine with internet and put it, not unpacked, in
<data_dir>/downloads/manual/ (default ~/tensorflow_datasets/downloads/manual/)
or in a folder given with --config.manual_dir=/path/to/folder; it is read
into memory at start-up. A tfds `cifar10` already prepared in
--config.data_dir is used instead. Without either the command stops at once
with a message saying where to put the archive.
Augmentation: pad-4 random crop, flip, PCA lighting, colour statistics from
the training set. Recipe: batch 128, paper SGD, lr 0.05 with warmup and
cosine decay, 60 epochs.
Not measured here (no CIFAR-10 on the development machine); the loading is
tested on small archives in the official format (tests/test_cifar10.py).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "cifar10"
    config.horizontal_flip = True  # natural images: a mirrored image shows the same class
    config.batch_size = 128
    config.num_epochs = 60.0
    config.learning_rate = 0.05
    config.warmup_epochs = 2.0
    config.eval_every_epochs = 5.0  # 1,950 steps of 128
    config.checkpoint_every_epochs = 5.0
    return config
