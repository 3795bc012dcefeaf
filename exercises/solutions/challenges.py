"""Reference solutions for exercises/challenges.py (measured: see LEARNING_GUIDE.md, "Practise").

    python exercises/check.py --challenge mlp --solutions --data-dir DATA_DIR
    python exercises/check.py --challenge cnn --solutions --data-dir DATA_DIR
    python exercises/check.py --challenge few --solutions --data-dir DATA_DIR
"""

from torch import nn


def mlp_challenge():
    """Wider and deeper than 03's SimpleNN, dropout against overfitting, OneCycle to settle at the end."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),  # 401,920 parameters
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2),  # 131,328
        nn.Linear(256, 10),  # 2,570
    )
    # Batch 128 halves the steps per epoch (faster on a CPU); OneCycle's high middle
    # learning rate explores, its near-zero end settles (06 uses it too).
    settings = {"epochs": 8, "batch_size": 128, "lr": 2e-3, "optimizer": "adam", "momentum": 0.0,
                "scheduler": "onecycle", "weight_decay": 0.0}
    return model, settings


def cnn_challenge():
    """06's CNN with batch normalisation after each conv layer, and 06's OneCycle schedule, in 2 epochs."""
    model = nn.Sequential(
        # Batch norm keeps each layer's outputs at mean 0, std 1 while the weights move fast, so the high
        # middle of OneCycle does not throw training off ("Normalization" in ML_CONCEPTS_EXPLAINED.md).
        nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )
    # One epoch of the same stayed below 99% validation accuracy on each of 3 seeds; two leave a margin over
    # the 98.5% target (the margin rule: exercises/challenge_trainer.py).
    settings = {"epochs": 2, "batch_size": 64, "lr": 3e-3, "optimizer": "adam", "momentum": 0.0,
                "scheduler": "onecycle", "weight_decay": 0.0}
    return model, settings


def few_labels_challenge():
    """A small CNN (it needs far fewer examples than an MLP to learn strokes), strong dropout, 30 short epochs."""
    model = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 14, 14)
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 7, 7)
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),  # 1,000 images are easy to memorise: drop half
        nn.Linear(128, 10),
    )
    # 1,000 images at batch 32 are 32 steps an epoch: 30 epochs are still under 1,000 steps.
    # Its validation accuracy after 30 epochs was about 96.5% (seeds 0-2, before any test run).
    settings = {"epochs": 30, "batch_size": 32, "lr": 3e-3, "optimizer": "adam", "momentum": 0.0,
                "scheduler": "onecycle", "weight_decay": 0.0}
    return model, settings
