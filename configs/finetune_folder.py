"""Fine-tune torchvision's ImageNet AlexNet on your own image folder.

Command:
  python main.py --config=configs/finetune_folder.py --config.folder_root=/data/flowers \
      --config.num_classes=102 --config.init_from=/data/alexnet-owt-7be5be79.pth

Data: an image folder, `root/train/<class>/*.jpg` and `root/val/<class>/*.jpg`
(JPEG, PNG, GIF, BMP); sorted class names give the labels, and
--config.num_classes must be their number (the run says so otherwise).
E.g. Oxford 102 Flowers or Stanford Cars sorted into that layout.
Weights: torchvision's ImageNet AlexNet, which you download yourself
(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth, 233 MB; this
package never downloads): the single-tower `owt` model, whose 1000-class head
is replaced by a fresh one for your classes (logged). Images are normalized
with ImageNet's mean and std, as the weights expect.
Recipe: all layers fine-tune, the pretrained layers at a tenth of the head's
learning rate (--config.backbone_lr_scale); the paper's SGD rule (weight
decay on the kernels only), lr 0.01 for the head with cosine decay, batch
64, 30 epochs; random 224 crops of the 256-resized image, flips, PCA
lighting; centre-crop evaluation
(--config.eval_crop=ten_crop for the paper's 10-crop test).
Variants: --config.freeze=conv1,conv2,conv3,conv4,conv5 (train fc6-fc8 only),
--config.linear_probe=True (fc8 only), --config.backbone_lr_scale=1.0.
Expected: not measured here (no internet to fetch the weights); the
digits experiment in docs/transfer.md measures the same machinery.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "image_folder"
    config.folder_root = ""  # required: --config.folder_root=/path/to/root
    config.num_classes = 2  # set to the number of class folders
    config.batch_size = 64
    config.num_epochs = 30.0

    config.optimizer = "paper_sgd"
    config.learning_rate = 0.01
    # The paper's rule, biases undecayed. torchvision's own recipe (which trained these weights)
    # decays every parameter: --config.weight_decay_on=all follows it instead.
    config.weight_decay_on = "weights"
    config.schedule = "cosine"
    config.warmup_epochs = 1.0
    config.eval_every_steps, config.eval_every_epochs = 500, 0.0
    config.checkpoint_every_steps, config.checkpoint_every_epochs = 500, 0.0

    config.image_size = 224
    config.resize_size = 256
    config.train_augment = "paper"
    config.horizontal_flip = True
    config.color_stats = "imagenet"  # what the torchvision weights were trained with

    config.model = "owt"
    config.towers = 1
    config.normalization = "none"
    config.init_scheme = "torch"  # for the fresh head

    config.init_from = ""  # required: a torchvision-layout .pth, or one of our workdirs
    config.backbone_lr_scale = 0.1
    return config
