"""02 - Meet the data: MNIST, 70,000 handwritten digits.

What you will learn
  * where MNIST comes from (this script downloads it the first time) and what
    it looks like in memory: raw uint8 images (N, 28, 28) and int64 labels
  * what one image really is: a 28 x 28 grid of numbers from 0 to 255
  * the three splits, 55,000 train / 5,000 validation / 10,000 test, and why
    the test set is kept for the very end
  * whether the ten digits are equally common (class balance)
  * normalisation: why the network gets (pixel - mean) / std instead of 0..255,
    and the (B, 1, 28, 28) float batches that 03 trains on
  * the standard ToTensor + Normalize + DataLoader pipeline you will meet in
    every tutorial, next to the course's faster in-memory loader (same numbers)

Run first: 01_hello_pytorch.py (no data needed there).

Run it
    python 02_load_mnist.py                            # downloads MNIST into data/ the first time
    python 02_load_mnist.py --data-dir DATA_DIR       # MNIST kept in DATA_DIR/MNIST/raw/ (offline)
    python 02_load_mnist.py --help                     # every flag and its default

Writes (in outputs/, or --out-dir)
    mnist_samples.png      32 training digits with their labels
    mnist_statistics.png   how many images per digit, and how bright the pixels are
    02_load_mnist.json     split sizes, class counts, mean and std (03 computes the same)

How long: about 10 s on the course's 2-core CPU (README.md "Results") once MNIST is on
disk; the first download adds the time to fetch about 11 MB.
"""

import argparse
import datetime as _dt
import time

import torch

import dl_utils

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
SEED = 0  # fixes which images land in the first shuffled batch
BATCH_SIZE = 128  # the batch we inspect in section 6 (03 trains with the same size)
DIGIT_INDEX = 0  # which training image section 3 prints as numbers (#0 is a 5)
SAMPLE_ROWS, SAMPLE_COLUMNS = 4, 8  # mnist_samples.png shows the first 4 x 8 = 32 training images
DIGITS = range(10)


def section(title: str) -> None:
    """Print a small header, so the output reads like the numbered sections below."""
    print(f"\n=== {title} " + "=" * max(3, 70 - len(title)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Load MNIST and look at it: shapes, splits, balance, pixels.")
    dl_utils.add_common_args(parser, seed=SEED)
    return parser


def ink_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) holding a non-zero pixel."""
    rows, columns = image.nonzero(as_tuple=True)
    if len(rows) == 0:  # an all-black image: show all of it
        return 0, image.shape[0] - 1, 0, image.shape[1] - 1
    return rows.min().item(), rows.max().item(), columns.min().item(), columns.max().item()


def digit_as_numbers(image: torch.Tensor) -> str:
    """The part of a (28, 28) uint8 image that holds ink, one line per row; 0 is shown as '.'.

    The all-zero border is left out so the numbers fit an 80-column terminal.
    """
    top, bottom, left, right = ink_box(image)
    return "\n".join("".join(f"{v:4d}" if v else "   ." for v in row[left:right + 1])
                     for row in image[top:bottom + 1].tolist())


def plot_samples(images: torch.Tensor, labels: torch.Tensor, path, *, show: bool = False):
    """The first SAMPLE_ROWS x SAMPLE_COLUMNS raw images, each titled with its label."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(SAMPLE_ROWS, SAMPLE_COLUMNS, figsize=(1.6 * SAMPLE_COLUMNS, 1.85 * SAMPLE_ROWS + 0.6))
    for i, ax in enumerate(axes.flat):
        # vmin/vmax pin 0 to black and 255 to white: no per-image contrast stretching.
        ax.imshow(images[i].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"#{i}: label {labels[i].item()}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"The first {len(axes.flat)} images of the MNIST training file and their labels "
                 "(28 x 28 pixels each, 0 = black, 255 = white)")
    return dl_utils.finish_figure(fig, path, show=show)


def plot_statistics(class_counts: torch.Tensor, pixel_counts: torch.Tensor, mean: float, std: float,
                    path, *, show: bool = False):
    """Left: images per digit in the training split. Right: histogram of all its pixel values."""
    import matplotlib.pyplot as plt

    fig, (ax_classes, ax_pixels) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [1, 1.25]})

    n_images = int(class_counts.sum())
    bars = ax_classes.bar(list(DIGITS), class_counts.tolist(), color=dl_utils.TRAIN_COLOR)
    # Each count is written upright inside its bar: "6,195" read sideways is wider than a bar.
    ax_classes.bar_label(bars, labels=[f"{c:,}" for c in class_counts.tolist()], fontsize=9, label_type="center",
                         color="white", fontweight="bold", rotation=90)
    ax_classes.axhline(n_images / 10, color="0.3", ls="--", lw=1,
                       label=f"perfectly balanced: {n_images / 10:,.0f} each")
    ax_classes.set(title=f"Class balance: images per digit ({n_images:,} training images)",
                   xlabel="digit (the label)", ylabel="number of images", xticks=list(DIGITS),
                   ylim=(0, 1.18 * class_counts.max().item()))
    ax_classes.legend(loc="upper right")
    ax_classes.grid(axis="y", alpha=0.3)

    # 256 possible pixel values, so the histogram is just a count per value.
    values = torch.arange(256) / 255.0
    fractions = pixel_counts / pixel_counts.sum()
    ax_pixels.bar(values.tolist(), pixel_counts.tolist(), width=1 / 255, color="0.45")
    ax_pixels.set_yscale("log")  # without it the bar at 0 hides everything else
    ax_pixels.axvline(mean, color="tab:red", lw=2, label=f"mean = {mean:.4f}")
    ax_pixels.axvline(mean + std, color="tab:red", ls="--", lw=1.3,
                      label=f"mean + 1 std (std = {std:.4f}, the spread)")
    # Arrows point at data; their texts sit at fixed places in the panel (axes fractions).
    arrow = {"arrowstyle": "->", "color": "0.2"}
    ax_pixels.annotate(f"{100 * fractions[0]:.1f}% of pixels are\nexactly 0 (background)",
                       xy=(0.008, pixel_counts[0].item()), xytext=(0.17, 0.85), textcoords="axes fraction",
                       arrowprops=arrow, fontsize=10, va="center")
    peak = 128 + pixel_counts[128:].argmax().item()  # the brightest common value: the strokes' ink
    ax_pixels.annotate(f"the strokes, mostly near 1 (white):\n{100 * fractions[128:].sum():.1f}% "
                       "of pixels are above 0.5",
                       xy=(peak / 255 - 0.004, pixel_counts[peak].item() * 0.7), xytext=(0.5, 0.3),
                       textcoords="axes fraction", arrowprops=arrow, fontsize=10, va="center")
    ax_pixels.set(title=f"Pixel intensities of the same images ({int(pixel_counts.sum()) / 1e6:.1f} million "
                        "pixels, log scale)",
                  xlabel="pixel value / 255  (0 = black, 1 = white)", ylabel="number of pixels (log scale)",
                  xlim=(-0.02, 1.02))
    # The top axis shows the same pixels after normalisation, (x - mean) / std:
    # the histogram's shape does not change, only the numbers on the axis.
    top = ax_pixels.secondary_xaxis("top", functions=(lambda x: (x - mean) / std, lambda z: z * std + mean))
    black, white = -mean / std, (1 - mean) / std
    top.set_xticks([black, 0, 1, 2, white], [f"{black:.2f}", "0", "1", "2", f"{white:.2f}"])
    top.set_xlabel("the same pixels after normalisation: (value - mean) / std")
    ax_pixels.legend(loc="upper right")
    ax_pixels.grid(axis="y", alpha=0.3)
    fig.suptitle("MNIST training split: how many of each digit, and how bright the pixels are", fontsize=13)
    return dl_utils.finish_figure(fig, path, show=show)


# ---------------------------------------------------------------------------
# 1. Find (or download) MNIST
# ---------------------------------------------------------------------------
# torchvision.datasets.MNIST looks for four files in <data-dir>/MNIST/raw/
# and downloads them if they are missing (about 11 MB, 55 MB unpacked).
# dl_utils.read_mnist wraps it: if the download fails, you get one
# paragraph saying where to put the files instead of a traceback.
def find_mnist(data_dir):
    """Section 1: (root, whether the files were already there, training (images, labels), test (images, labels))."""
    section("1. Find (or download) MNIST")
    root = dl_utils.resolve_data_dir(data_dir)
    raw_dir = root / "MNIST" / "raw"
    present = all((raw_dir / name).is_file() for name in dl_utils.MNIST_FILES)
    print(f"Looking in {raw_dir}: " + ("all four files are there." if present else
                                        "files missing, downloading (about 11 MB; once only)..."))
    return root, present, dl_utils.read_mnist(root, train=True), dl_utils.read_mnist(root, train=False)


# ---------------------------------------------------------------------------
# 2. What the raw data is
# ---------------------------------------------------------------------------
# One uint8 (a whole number 0..255, one byte) per pixel: all 60,000
# training images take 60,000 x 784 bytes = 47 MB. The labels are int64,
# the type nn.CrossEntropyLoss expects for class numbers.
def raw_tensors(train_images, train_labels, test_images, test_labels) -> dict:
    """Section 2: shapes, dtypes and value ranges of the four tensors."""
    section("2. The raw tensors")
    print(f"training images {tuple(train_images.shape)} {train_images.dtype}, "
          f"labels {tuple(train_labels.shape)} {train_labels.dtype}")
    print(f"test images     {tuple(test_images.shape)} {test_images.dtype}, "
          f"labels {tuple(test_labels.shape)} {test_labels.dtype}")
    print(f"pixel values from {train_images.min().item()} to {train_images.max().item()}; "
          f"labels from {train_labels.min().item()} to {train_labels.max().item()}; "
          f"{train_images.numel():,} training pixels in all")
    return {"train_images_shape": list(train_images.shape), "test_images_shape": list(test_images.shape),
            "images_dtype": str(train_images.dtype), "labels_dtype": str(train_labels.dtype),
            "pixel_min": train_images.min().item(), "pixel_max": train_images.max().item()}


# ---------------------------------------------------------------------------
# 3. One digit, as the computer sees it
# ---------------------------------------------------------------------------
# An image is only a grid of brightness values. Squint at the numbers
# below and you can read the digit; a network sees nothing else.
def one_digit(images, labels, index: int) -> dict:
    """Section 3: training image `index` printed as its numbers."""
    digit = images[index]
    top, bottom, left, right = ink_box(digit)
    section(f"3. Training image #{index} as numbers (its label: {labels[index].item()})")
    print(f"Rows {top}-{bottom} and columns {left}-{right} of the 28 x 28 grid ('.' = 0; every pixel "
          "outside them is 0 too):")
    print(digit_as_numbers(digit))
    return {"index": index, "label": labels[index].item()}


# ---------------------------------------------------------------------------
# 4. Three splits: train, validation, test
# ---------------------------------------------------------------------------
# MNIST ships 60,000 training and 10,000 test images (the test digits
# were written by different people). We hold back 1/12 of the training
# images, 5,000, as a validation set: 03 checks it after every epoch to
# choose epochs and settings. Because those choices are tuned on it,
# validation accuracy ends up a little optimistic; the test set, looked
# at once at the very end, gives the honest number. The split is drawn
# once with a fixed seed (dl_utils.SPLIT_SEED), separate from --seed, so
# every run of every script is scored on the same 5,000 images.
def the_splits(train_labels, test_labels):
    """Section 4: (training indices, the labels of each split by name, each split's size)."""
    section("4. The splits")
    train_idx, val_idx = dl_utils.split_indices(len(train_labels))
    splits = {"train": train_labels[train_idx], "validation": train_labels[val_idx], "test": test_labels}
    sizes = {name: len(labels) for name, labels in splits.items()}
    print(f"The {len(train_labels):,} training images, split once with the fixed seed {dl_utils.SPLIT_SEED}:")
    print(f"  train      {sizes['train']:7,}  the network learns from these")
    print(f"  validation {sizes['validation']:7,}  (1/12) checked after every epoch, to choose epochs and settings")
    print(f"The {sizes['test']:,} images of the separate test file:")
    print(f"  test       {sizes['test']:7,}  used once, at the very end, for the accuracy you report")
    return train_idx, splits, sizes


# ---------------------------------------------------------------------------
# 5. Class balance and pixel statistics
# ---------------------------------------------------------------------------
# If one digit were rare, a network could ignore it and still score well;
# MNIST is roughly balanced, so plain accuracy is a fair score. The pixel
# mean and std come from the training split only (not validation or test:
# even a mean is information about data you promise not to look at).
def balance_and_pixels(splits: dict, train_pixels: torch.Tensor) -> dict:
    """Section 5: images per digit in each split; count of each pixel value 0..255, mean and std (training split)."""
    section("5. Class balance and pixel statistics")
    class_counts = {name: torch.bincount(labels, minlength=10) for name, labels in splits.items()}
    print("digit       " + "".join(f"{d:>7d}" for d in DIGITS) + "    total")
    for name, counts in class_counts.items():
        print(f"{name:<12}" + "".join(f"{c:7,d}" for c in counts.tolist()) + f"  {int(counts.sum()):7,d}")
    train_counts = class_counts["train"]
    share = 100 * train_counts / train_counts.sum()
    print(f"Most common in train: {train_counts.argmax().item()} ({share.max():.1f}%); "
          f"least common: {train_counts.argmin().item()} ({share.min():.1f}%); perfectly balanced would be 10.0%")

    pixel_counts = torch.bincount(train_pixels.flatten(), minlength=256)
    mean, std = dl_utils.normalization_stats(train_pixels)  # same numbers 03 uses
    fraction_zero = pixel_counts[0].item() / pixel_counts.sum().item()
    print(f"Pixels of the {len(train_pixels):,} training images, scaled to 0..1: mean {mean:.4f}, std {std:.4f}")
    print(f"{100 * fraction_zero:.1f}% of them are exactly 0 (background), so the mean is low")
    return {"class_counts": class_counts, "pixel_counts": pixel_counts, "mean": mean, "std": std,
            "fraction_zero": fraction_zero}


# ---------------------------------------------------------------------------
# 6. Normalisation and the batches 03 trains on
# ---------------------------------------------------------------------------
# The network gets (pixel / 255 - mean) / std rather than 0..255: inputs
# centred on 0 with a spread of about 1 keep every layer's outputs in a
# sensible range from the first step, so one learning rate suits all
# weights. dl_utils.load_mnist_data does it once for all 70,000 images
# and serves batches of shape (B, 1, 28, 28): B images, 1 colour channel
# (grey), 28 rows, 28 columns.
def normalised_batches(data, *, mean: float, std: float) -> dict:
    """Section 6: one training batch of `data` (load_mnist_data's loaders) and the normalised training set."""
    section("6. Normalisation and a batch")
    images, labels = next(iter(data.train_loader))
    normalised = data.train_loader.images
    low, high = (0 - mean) / std, (1 - mean) / std
    print(f"a batch: images {tuple(images.shape)} {images.dtype} on {images.device}, "
          f"labels {tuple(labels.shape)} {labels.dtype}")
    print(f"batch pixels: mean {images.mean().item():+.3f}, std {images.std().item():.3f}  (about 0 and 1)")
    print(f"all {len(normalised):,} normalised training images: mean {normalised.mean().item():+.4f}, "
          f"std {normalised.std().item():.4f}")
    print(f"a black pixel (0) becomes {low:.4f}, a white one (255) becomes {high:.4f}")
    print(f"{len(data.train_loader)} batches of up to {BATCH_SIZE} make one epoch of {len(normalised):,} images")
    return {"batch_shape": list(images.shape), "batch_dtype": str(images.dtype),
            "batch_mean": images.mean().item(), "batch_std": images.std().item(),
            "train_mean": normalised.mean().item(), "train_std": normalised.std().item(),
            "black_pixel": low, "white_pixel": high}


# ---------------------------------------------------------------------------
# 7. The standard pipeline, and why the course keeps MNIST in memory
# ---------------------------------------------------------------------------
# Most tutorials (and dl_utils.standard_mnist_loaders, which builds it
# with the course's split and statistics) write:
#
#     transform = transforms.Compose([
#         transforms.ToTensor(),                      # 0..255 image -> 0..1 float tensor (1, 28, 28)
#         transforms.Normalize((0.1307,), (0.3081,)), # (x - mean) / std
#     ])
#     dataset = datasets.MNIST("data", train=True, download=True, transform=transform)
#     loader = DataLoader(dataset, batch_size=64, shuffle=True)
#
# That runs the transforms in Python, one image at a time, every epoch.
# dl_utils.load_mnist_data does the same arithmetic once for the whole
# tensor. Below we check the two give the same numbers and time both.
def standard_vs_in_memory(root, data, *, seed: int, sizes: dict) -> dict:
    """Section 7: the validation images through both pipelines: largest difference and seconds each."""
    section("7. The standard DataLoader pipeline vs the course's in-memory loader")
    _, standard_val, _ = dl_utils.standard_mnist_loaders(root, batch_size=BATCH_SIZE, seed=seed)
    timings, batches = {}, {}
    for name, loader in (("standard", standard_val), ("in_memory", data.val_loader)):
        tick = time.perf_counter()
        batches[name] = [batch.cpu() for batch, _ in loader]  # .cpu(): wait for a GPU to finish too
        timings[name] = time.perf_counter() - tick
    difference = max((a - b).abs().max().item() for a, b in zip(batches["standard"], batches["in_memory"]))
    per_epoch = timings["standard"] / sizes["validation"] * sizes["train"]
    print(f"The {sizes['validation']:,} validation images through both pipelines:")
    print(f"  largest difference between them: {difference:.1e} (float rounding: the same numbers)")
    print(f"  time, ToTensor + Normalize + DataLoader: {timings['standard']:.2f} s "
          f"(about {per_epoch:.0f} s per {sizes['train']:,}-image epoch)")
    print(f"  time, in memory (load_mnist_data):       {timings['in_memory'] * 1000:.1f} ms")
    print("Both live in dl_utils.py. The DataLoader is still the tool for data that does not fit in\n"
          "memory, or that needs a new random change (augmentation) to each image every epoch.")
    return {"max_abs_difference": difference, "images": sizes["validation"],
            "standard_seconds": timings["standard"], "in_memory_seconds": timings["in_memory"]}


def main(argv=None) -> dict:
    args = dl_utils.parse_args(build_parser(), argv)
    start = time.perf_counter()
    dl_utils.set_seed(args.seed)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    # Sections 1-7, each a function above: read its comment, then its output.
    root, present, (train_images, train_labels), (test_images, test_labels) = find_mnist(args.data_dir)
    raw = raw_tensors(train_images, train_labels, test_images, test_labels)
    first_digit = one_digit(train_images, train_labels, DIGIT_INDEX)
    train_idx, splits, sizes = the_splits(train_labels, test_labels)
    stats = balance_and_pixels(splits, train_images[train_idx])
    data = dl_utils.load_mnist_data(root, batch_size=BATCH_SIZE, seed=args.seed, device=device)
    normalised = normalised_batches(data, mean=stats["mean"], std=stats["std"])
    comparison = standard_vs_in_memory(root, data, seed=args.seed, sizes=sizes)

    # 8. The pictures and the results
    section("8. The plots")
    samples_path = plot_samples(train_images, train_labels, args.out_dir / "mnist_samples.png", show=args.show)
    stats_path = plot_statistics(stats["class_counts"]["train"], stats["pixel_counts"], stats["mean"], stats["std"],
                                 args.out_dir / "mnist_statistics.png", show=args.show)
    results = {
        "script": "02_load_mnist",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "device": dl_utils.device_name(device),
        "torch_version": torch.__version__,
        "settings": dl_utils.settings_from_args(args),  # every flag, read from the parser: none can be missed
        "data_dir": str(root),
        "downloaded": not present,
        "raw": raw,
        "split_sizes": sizes,
        "split_seed": dl_utils.SPLIT_SEED,
        "class_counts": {name: counts.tolist() for name, counts in stats["class_counts"].items()},
        "mean": stats["mean"],
        "std": stats["std"],
        "fraction_zero_pixels": stats["fraction_zero"],
        "normalised": normalised,
        "standard_vs_in_memory": comparison,
        "first_digit": first_digit,
        "seconds": time.perf_counter() - start,
    }
    dl_utils.save_results(args.out_dir, "02_load_mnist", results)
    print(f"Saved {samples_path.name}, {stats_path.name} and 02_load_mnist.json in {args.out_dir}")
    print("Next: python 03_train_mnist.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
