"""Smoke test: a few steps of the default setup, for checking an installation.

Command:
  python main.py --config=configs/smoke.py     # about 20 s on 2 CPU cores

Trains the `small` AlexNet on the embedded digits for 12 steps with
evaluation and checkpoints, so every part of the loop runs once.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.num_train_steps = 12
    config.batch_size = 32
    config.warmup_epochs = 0.0
    config.log_every_steps = 4
    config.eval_every_steps, config.eval_every_epochs = 6, 0.0
    config.checkpoint_every_steps, config.checkpoint_every_epochs = 6, 0.0
    return config
