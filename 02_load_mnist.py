"""02 - Meet the data: MNIST, 70,000 handwritten digits.

What you will learn
  * where MNIST comes from (downloaded the first time) and what it is in memory: uint8 images
    (N, 28, 28) and int64 labels; one image is a 28 x 28 grid of numbers from 0 to 255
  * the splits, 55,000 train / 5,000 validation / 10,000 test, and why the test set waits
  * class balance, pixel statistics, and normalisation: (pixel - mean) / std
  * the (B, 1, 28, 28) batches 03 trains on, by hand, by the course's in-memory loader (written here),
    and by the ToTensor + Normalize + DataLoader pipeline of most tutorials: the same batches

Run first: 01_hello_pytorch.py (no data needed there).

Run it
    python 02_load_mnist.py                          # downloads MNIST into data/ the first time
    python 02_load_mnist.py --data-dir DATA_DIR      # MNIST kept in DATA_DIR/MNIST/raw/ (offline)
    python 02_load_mnist.py --digit-index 7          # print another training image as numbers
    python 02_load_mnist.py --help                   # every setting, its default and why
(There is no --quick here: 02 trains nothing and takes seconds.)

Writes (in outputs/, or --out-dir)
    mnist_samples.png      32 training digits with their labels
    mnist_statistics.png   how many images per digit, and how bright the pixels are
    02_load_mnist.json     split sizes, class counts, mean and std (03 computes the same)

How long: under 10 s on a 2-core CPU with MNIST on disk, plus its download once (README.md "Results").
"""

import textwrap

import matplotlib.pyplot as plt
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

import dl_utils

# --- Settings: change one, rerun, compare ----------------------------------
# Each is a flag (DIGIT_INDEX -> --digit-index), its comment the --help text; all are recorded in the JSON.
SEED = 0  # fixes which images land in the first shuffled batch
BATCH_SIZE = dl_utils.BATCH_SIZE  # images per batch: the course's 64, as 03 trains with
DIGIT_INDEX = 0  # which training image section 3 prints as numbers (#0 is a 5)
SAMPLE_ROWS = 4  # rows of mnist_samples.png, which shows the first rows x columns training images
SAMPLE_COLUMNS = 8  # columns of mnist_samples.png: 4 x 8 = 32 digits
SETTINGS = dl_utils.collect_settings(globals())  # the block above, in order: the flags and the recorded config


# --- 1. Find (or download) MNIST -------------------------------------------
# torchvision's datasets.MNIST downloads four files into <data-dir>/MNIST/raw/
# when they are missing (about 11 MB, 55 MB unpacked). dl_utils.read_mnist wraps
# it: a failed download ends in one paragraph saying where to put the files.
def find_mnist(data_dir):
    """Section 1: (root, whether the files were already there, training (images, labels), test (images, labels))."""
    root = dl_utils.resolve_data_dir(data_dir)
    raw_dir = root / "MNIST" / "raw"
    present = all((raw_dir / name).is_file() for name in dl_utils.MNIST_FILES)
    print(f"Looking in {raw_dir}: " + ("all four files are there." if present else
                                        "files missing, downloading (about 11 MB; once only)..."))
    return root, present, dl_utils.read_mnist(root, train=True), dl_utils.read_mnist(root, train=False)


# --- 2. What the raw data is -----------------------------------------------
# One uint8 (a whole number 0..255, one byte) per pixel: all 60,000
# training images take 60,000 x 784 bytes = 47 MB. The labels are int64,
# the type nn.CrossEntropyLoss expects for class numbers.
def raw_tensors(train_images, train_labels, test_images, test_labels) -> dict:
    """Section 2: shapes, dtypes and value ranges of the four tensors."""
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


# --- 3. One digit, as the computer sees it ---------------------------------
# An image is only a grid of brightness values. Squint at the numbers
# below and you can read the digit; a network sees nothing else.
def ink_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) holding a non-zero pixel."""
    rows, columns = image.nonzero(as_tuple=True)
    if len(rows) == 0:  # an all-black image: show all of it
        return 0, image.shape[0] - 1, 0, image.shape[1] - 1
    return rows.min().item(), rows.max().item(), columns.min().item(), columns.max().item()


def digit_as_numbers(image: torch.Tensor) -> str:
    """The inked part of a (28, 28) uint8 image, one line per row, 0 as '.': it fits an 80-column terminal."""
    top, bottom, left, right = ink_box(image)
    return "\n".join("".join(f"{v:4d}" if v else "   ." for v in row[left:right + 1])
                     for row in image[top:bottom + 1].tolist())


def one_digit(images, labels, index: int) -> dict:
    """Section 3: training image `index` printed as its numbers."""
    if index >= len(images):
        raise dl_utils.CourseError(f"--digit-index {index}: there are only {len(images):,} training images (0 to "
                                   f"{len(images) - 1:,}). Pick one of those.")
    digit = images[index]
    top, bottom, left, right = ink_box(digit)
    print(f"Label {labels[index].item()}. Rows {top}-{bottom}, columns {left}-{right} of the 28 x 28 grid "
          "('.' = 0, as is every pixel outside them):")
    print(digit_as_numbers(digit))
    return {"index": index, "label": labels[index].item()}


# --- 4. Three splits: train, validation, test ------------------------------
# MNIST ships 60,000 training and 10,000 test images (the test digits were
# written by different people). We hold back 1/12 of the training images,
# 5,000, as a validation set: 03 checks it after every epoch to choose epochs
# and settings, so validation accuracy ends up a little optimistic; the test
# set, looked at once at the very end, gives the honest number. The split is
# drawn once with a fixed seed (dl_utils.SPLIT_SEED), separate from --seed,
# so every run of every script is scored on the same 5,000 images.
def the_splits(train_labels, test_labels):
    """Section 4: (training indices, the labels of each split by name, each split's size)."""
    train_idx, val_idx = dl_utils.split_indices(len(train_labels))
    splits = {"train": train_labels[train_idx], "validation": train_labels[val_idx], "test": test_labels}
    sizes = {name: len(labels) for name, labels in splits.items()}
    print(f"The {len(train_labels):,} training images, split once with the fixed seed {dl_utils.SPLIT_SEED}:")
    print(f"  train      {sizes['train']:7,}  the network learns from these")
    print(f"  validation {sizes['validation']:7,}  (1/12) checked after every epoch, to choose epochs and settings")
    print(f"  test       {sizes['test']:7,}  the separate test file: used once, at the very end, for the accuracy "
          "you report")
    return train_idx, splits, sizes


# --- 5. Class balance and pixel statistics ---------------------------------
# If one digit were rare, a network could ignore it and still score well;
# MNIST is roughly balanced, so plain accuracy is a fair score. The pixel
# mean and std come from the training split only (not validation or test:
# even a mean is information about data you promise not to look at).
def balance_and_pixels(splits: dict, train_pixels: torch.Tensor) -> dict:
    """Section 5: images per digit in each split; count of each pixel value 0..255, mean and std (training split)."""
    class_counts = {name: torch.bincount(labels, minlength=10) for name, labels in splits.items()}
    print("digit       " + "".join(f"{d:>7d}" for d in range(10)) + "    total")
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


# --- 6. Normalisation, and the batches 03 trains on ------------------------
# The network gets (pixel / 255 - mean) / std, not 0..255: inputs centred on 0
# with a spread of about 1 keep every layer's outputs in a sensible range from
# the first step, so one learning rate suits all weights. MNIST is small (55,000
# x 784 floats x 4 bytes = 172 MB): normalise it all once, add the colour channel
# layers expect (1: grey) -> (55,000, 1, 28, 28), and a batch is B rows picked by
# a shuffled order, drawn anew each epoch. dl_utils.load_mnist_data does just that
# (three splits, on your --device): below, its first batch is the one we made.
def normalised_batches(train_images, train_labels, data, *, mean: float, std: float, seed: int) -> dict:
    """Section 6: the first training batch made by hand and by load_mnist_data (`data`), compared."""
    normalised = ((train_images.float() / 255 - mean) / std).unsqueeze(1)  # (N, 28, 28) uint8 -> (N, 1, 28, 28)
    n, b = len(normalised), data.train_loader.batch_size
    first = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:b]  # epoch 1's order: its first B
    images, labels = next(iter(data.train_loader))  # load_mnist_data's first batch, on the device
    difference = (normalised[first] - images.cpu()).abs().max().item()
    same_labels = torch.equal(train_labels[first], labels.cpu())
    print(f"a batch: images {tuple(images.shape)} {images.dtype} on {images.device}, labels {tuple(labels.shape)}")
    print(f"by hand vs load_mnist_data: largest difference {difference:.1e} (float rounding), labels "
          f"{'identical' if same_labels else 'DIFFERENT'}")
    print(f"pixels of this batch: mean {images.mean().item():+.3f}, std {images.std().item():.3f}; of all "
          f"{len(normalised):,} images: mean {normalised.mean().item():+.4f}, std {normalised.std().item():.4f}")
    print(f"a black pixel (0) becomes {-mean / std:.4f}, a white one (255) becomes {(1 - mean) / std:.4f}")
    print(f"one epoch of {n:,} images = ceil({n:,} / {b}) = {len(data.train_loader)} batches "
          f"({len(data.train_loader) - 1} full, the last of {n - b * (len(data.train_loader) - 1)})")
    return {"batch_shape": list(images.shape), "batch_dtype": str(images.dtype), "batch_mean": images.mean().item(),
            "batch_std": images.std().item(), "train_mean": normalised.mean().item(),
            "train_std": normalised.std().item(), "black_pixel": -mean / std, "white_pixel": (1 - mean) / std,
            "batches_per_epoch": len(data.train_loader), "by_hand_max_difference": difference,
            "by_hand_same_labels": same_labels}


# --- 7. The standard pipeline: ToTensor + Normalize + DataLoader -----------
# Most tutorials (pytorch/examples mnist/main.py too) load MNIST so: datasets.MNIST
# hands out one image at a time, ToTensor makes it a (1, 28, 28) float tensor in
# [0, 1], Normalize computes (x - mean) / std, and a DataLoader stacks B of them.
# They paste the mean and std of all 60,000 training images (0.1307, 0.3081); we
# use load_mnist_data's split and statistics, to compare number for number. It
# redoes the arithmetic per image, every epoch (why the course keeps MNIST in
# memory: see docs/PERFORMANCE.md, "Data in memory"), and is the tool for data
# too big for memory or a new random change (augmentation) to each image every epoch.
def standard_mnist_loaders(data_dir=None, *, batch_size: int = dl_utils.BATCH_SIZE, subset: int = 0, seed: int = 0,
                           num_workers: int = 0):
    """(train, validation, test) DataLoaders: the tutorial pipeline with the course's split and statistics."""
    root = dl_utils.resolve_data_dir(data_dir)
    train_images, _ = dl_utils.read_mnist(root, train=True)  # downloads MNIST if it is missing
    train_idx, val_idx = dl_utils.split_indices(len(train_images))
    train_idx = train_idx[:subset] if subset else train_idx  # subset=N: the first N (0: all)
    mean, std = dl_utils.normalization_stats(train_images[train_idx])
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    full_train = datasets.MNIST(str(root), train=True, transform=transform)
    test_set = datasets.MNIST(str(root), train=False, transform=transform)
    evaluation = {"batch_size": dl_utils.EVAL_BATCH_SIZE, "num_workers": num_workers}  # as load_mnist_data
    return (DataLoader(Subset(full_train, train_idx.tolist()), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed), num_workers=num_workers),  # repeatable
            DataLoader(Subset(full_train, val_idx.tolist()), **evaluation), DataLoader(test_set, **evaluation))


def standard_vs_in_memory(root, data, *, batch_size: int, seed: int) -> dict:
    """Section 7: both pipelines' training batches (shape, count) and validation batches (every number)."""
    standard_train, standard_val, _ = standard_mnist_loaders(root, batch_size=batch_size, seed=seed)
    images, labels = next(iter(standard_train))
    print(f"standard pipeline: {len(standard_train)} training batches per epoch of images {tuple(images.shape)} "
          f"{images.dtype}\n(in memory: {len(data.train_loader)} of the same shape, in another shuffled order)")
    pairs = list(zip(standard_val, data.val_loader, strict=True))  # validation: not shuffled, so batch by batch
    difference = max((a - b.cpu()).abs().max().item() for (a, _), (b, _) in pairs)
    same_labels, seen = all(torch.equal(a, b.cpu()) for (_, a), (_, b) in pairs), len(standard_val.dataset)
    print(f"validation, {seen:,} images in {len(standard_val)} unshuffled batches: largest difference from in memory "
          f"{difference:.1e}\n(float rounding), labels {'identical' if same_labels else 'DIFFERENT'}: the same batches")
    return {"max_abs_difference": difference, "same_labels": same_labels, "images": seen,
            "train_batches": [len(standard_train), len(data.train_loader)], "batch_shape": list(images.shape)}


# --- 8. The plots -----------------------------------------------------------
def plot_samples(images: torch.Tensor, labels: torch.Tensor, path, *, rows: int, columns: int, settings: str,
                 show: bool = False):
    """The first rows x columns raw training images, each titled with its label."""
    title = textwrap.wrap(f"The first {rows * columns} images of the MNIST training file and their labels (28 x 28 "
                          "pixels each, 0 = black, 255 = white)", 16 * columns)  # about 16 characters fit a column
    title += textwrap.wrap(f"[settings: {settings}]", 16 * columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False,  # a quarter inch more per line of title
                             figsize=(1.6 * columns, 1.85 * rows + 0.25 * len(title) + 0.3))
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i].numpy(), cmap="gray", vmin=0, vmax=255)  # 0 black, 255 white in every image
        ax.set_title(f"#{i}: label {labels[i].item()}", fontsize=10)
        ax.set(xticks=[], yticks=[])
    fig.suptitle("\n".join(title))
    return dl_utils.finish_figure(fig, path, show=show)


def plot_statistics(class_counts: torch.Tensor, pixel_counts: torch.Tensor, mean: float, std: float,
                    path, *, settings: str, show: bool = False):
    """Left: images per digit in the training split. Right: histogram of all its pixel values."""
    fig, (ax_classes, ax_pixels) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [1, 1.25]})
    n_images = int(class_counts.sum())
    bars = ax_classes.bar(range(10), class_counts.tolist(), color=dl_utils.TRAIN_COLOR)
    # Each count is written upright inside its bar: "6,195" read sideways is wider than a bar.
    ax_classes.bar_label(bars, labels=[f"{c:,}" for c in class_counts.tolist()], fontsize=9, label_type="center",
                         color="white", fontweight="bold", rotation=90)
    ax_classes.axhline(n_images / 10, color="0.3", ls="--", lw=1, label=f"perfectly balanced: {n_images // 10:,} each")
    ax_classes.set(title=f"Class balance: images per digit ({n_images:,} training images)",
                   xlabel="digit (the label)", ylabel="number of images", xticks=range(10),
                   ylim=(0, 1.18 * class_counts.max().item()))

    # 256 possible pixel values, so the histogram is just a count per value.
    fractions = pixel_counts / pixel_counts.sum()
    ax_pixels.bar((torch.arange(256) / 255.0).tolist(), pixel_counts.tolist(), width=1 / 255, color="0.45")
    ax_pixels.set_yscale("log")  # without it the bar at 0 hides everything else
    ax_pixels.axvline(mean, color="tab:red", lw=2, label=f"mean = {mean:.4f}")
    ax_pixels.axvline(mean + std, color="tab:red", ls="--", lw=1.3, label=f"mean + 1 std (std = {std:.4f}, the spread)")
    # Arrows point at data; their texts sit at fixed places in the panel (axes fractions).
    note = {"textcoords": "axes fraction", "arrowprops": {"arrowstyle": "->", "color": "0.2"}, "va": "center"}
    ax_pixels.annotate(f"{100 * fractions[0]:.1f}% of pixels are\nexactly 0 (background)",
                       xy=(0.008, pixel_counts[0].item()), xytext=(0.17, 0.85), **note)
    peak = 128 + pixel_counts[128:].argmax().item()  # the brightest common value: the strokes' ink
    ax_pixels.annotate(f"the strokes, mostly near 1 (white):\n{100 * fractions[128:].sum():.1f}% of pixels are "
                       "above 0.5", xy=(peak / 255 - 0.004, pixel_counts[peak].item() * 0.7), xytext=(0.5, 0.3), **note)
    ax_pixels.set(title=f"Pixel intensities of the same images ({int(pixel_counts.sum()) / 1e6:.1f} million "
                        "pixels, log scale)", xlabel="pixel value / 255  (0 = black, 1 = white)",
                  ylabel="number of pixels (log scale)", xlim=(-0.02, 1.02))
    # The top axis shows the same pixels after normalisation, (x - mean) / std:
    # the histogram's shape does not change, only the numbers on the axis.
    top = ax_pixels.secondary_xaxis("top", functions=(lambda x: (x - mean) / std, lambda z: z * std + mean))
    black, white = -mean / std, (1 - mean) / std
    top.set_xticks([black, 0, 1, 2, white], [f"{black:.2f}", "0", "1", "2", f"{white:.2f}"])
    top.set_xlabel("the same pixels after normalisation: (value - mean) / std")
    for ax in (ax_classes, ax_pixels):
        ax.legend(loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"MNIST training split: how many of each digit, and how bright the pixels are  [settings: {settings}]",
                 fontsize=13)
    return dl_utils.finish_figure(fig, path, show=show)


def main(argv=None) -> dict:
    parser = dl_utils.build_parser(__doc__.splitlines()[0], SETTINGS, source=__file__)
    args = dl_utils.parse_args(parser, argv)
    device, why = dl_utils.get_device(args.device)
    print(f"Device: {device} ({why})")

    dl_utils.step("1. Find (or download) MNIST")
    root, present, (train_images, train_labels), (test_images, test_labels) = find_mnist(args.data_dir)
    dl_utils.step("2. The raw tensors")
    raw = raw_tensors(train_images, train_labels, test_images, test_labels)
    dl_utils.step(f"3. Training image #{args.digit_index} as numbers")
    first_digit = one_digit(train_images, train_labels, args.digit_index)
    dl_utils.step("4. The splits")
    train_idx, splits, sizes = the_splits(train_labels, test_labels)
    dl_utils.step("5. Class balance and pixel statistics")
    stats = balance_and_pixels(splits, train_images[train_idx])
    dl_utils.step("6. Normalisation, and the batches 03 trains on")
    data = dl_utils.load_mnist_data(root, batch_size=args.batch_size, seed=args.seed, device=device)
    normalised = normalised_batches(train_images[train_idx], train_labels[train_idx], data,
                                    mean=stats["mean"], std=stats["std"], seed=args.seed)
    dl_utils.step("7. The standard DataLoader pipeline, and the same batches in memory")
    comparison = standard_vs_in_memory(root, data, batch_size=args.batch_size, seed=args.seed)

    dl_utils.step("8. The plots")
    settings = dl_utils.changed_settings(parser, args)
    samples_path = plot_samples(train_images, train_labels, args.out_dir / "mnist_samples.png", rows=args.sample_rows,
                                columns=args.sample_columns, settings=settings, show=args.show)
    stats_path = plot_statistics(stats["class_counts"]["train"], stats["pixel_counts"], stats["mean"], stats["std"],
                                 args.out_dir / "mnist_statistics.png", settings=settings, show=args.show)
    results = {"script": "02_load_mnist", "device": dl_utils.device_name(device), "torch_version": torch.__version__,
               "settings": dl_utils.settings_from_args(args),  # every setting, read from the flags
               "data_dir": str(root), "downloaded": not present, "raw": raw, "first_digit": first_digit,
               "split_sizes": sizes, "split_seed": dl_utils.SPLIT_SEED,
               "class_counts": {name: counts.tolist() for name, counts in stats["class_counts"].items()},
               "mean": stats["mean"], "std": stats["std"], "fraction_zero_pixels": stats["fraction_zero"],
               "normalised": normalised, "standard_vs_in_memory": comparison}
    dl_utils.save_results(args.out_dir, "02_load_mnist", results)
    print(f"Saved {samples_path.name}, {stats_path.name} and 02_load_mnist.json in {args.out_dir}")
    print("Next: python 03_train_mnist.py")
    return results


if __name__ == "__main__":
    dl_utils.run(main)
