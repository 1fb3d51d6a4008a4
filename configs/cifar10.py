"""CIFAR-10: the `small` AlexNet on 32x32 natural images.

Command:
  python main.py --config=configs/cifar10.py

Data: tfds `cifar10` (50,000 train / 10,000 test, 32x32), downloaded once
(about 163 MB) into --config.data_dir on a machine with internet access.
Augmentation: pad-4 random crop, flip, PCA lighting, colour statistics from
the training set. Recipe: batch 128, paper SGD, lr 0.05 with warmup and
cosine decay, 60 epochs.
Not measured here (no internet on the development machine to download
CIFAR-10); the pipeline is tested with tfds's mock data.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "cifar10"
    config.batch_size = 128
    config.num_epochs = 60.0
    config.learning_rate = 0.05
    config.warmup_epochs = 2.0
    config.eval_every_steps = 390 * 5
    config.checkpoint_every_steps = 390 * 5
    return config
