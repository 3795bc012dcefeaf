"""Decision boundaries, in a network squeezed through 2 numbers: 07's step 5.

07_look_inside.py points here and runs `run` below as its step 5; 07's
--epochs, --batch-size, --lr and --subset are this network's settings.

Run it
    python 07_look_inside.py            # writes decision_boundary.png among 07's figures
    python 07_look_inside.py --quick    # this network trained 1 epoch on 5,000 images

Why a file of its own: 07 looks inside the networks 03 and 06 trained; this
is the one part that trains a new network (its own epochs, its own epoch
lines), to draw a picture no 128-number layer allows. It uses dl_utils and
libraries, never a lesson.
"""

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap
from torch import nn

import dl_utils


# 784 -> 128 -> 2 -> 10: the whole decision passes through 2 numbers, so we
# can draw the plane they live in. The last layer is Linear(2, 10): digit d
# wins where its score w_d . z + b_d is the largest, so every boundary between
# two regions is a straight line. Training has to place the digits in the
# plane so that straight lines separate them; the confusable ones end up
# side by side.
class Bottleneck(nn.Module):
    def __init__(self, *, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 2))
        self.head = nn.Linear(2, 10)  # 2 * 10 weights + 10 biases: straight boundaries

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) raw pixels -> (B, 10)
        return self.head(self.encode((x - self.mean) / self.std))


def train_bottleneck(data, *, epochs: int, lr: float, device) -> tuple[Bottleneck, dict]:
    """Train it with 03's loop (dl_utils.fit); data holds raw pixels (07 loads MNIST with mean 0, std 1)."""
    pixels = data.train_loader.images  # raw, 0..1: the network normalises them itself, with their statistics
    model = Bottleneck(mean=pixels.mean().item(), std=pixels.std().item()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = dl_utils.fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(), optimizer, epochs=epochs)
    return model.eval(), history


def plot_decision_boundary(model: Bottleneck, images, labels, accuracy: float, pairs: list, path, *, made: str,
                           show: bool):
    with torch.no_grad():
        codes = model.encode((images - model.mean) / model.std).cpu()  # (N, 2)
    low, high = codes.quantile(0.005, dim=0), codes.quantile(0.995, dim=0)  # a few outliers would zoom out
    margin = 0.1 * (high - low)
    xs = torch.linspace(float(low[0] - margin[0]), float(high[0] + margin[0]), 400)
    ys = torch.linspace(float(low[1] - margin[1]), float(high[1] + margin[1]), 400)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (400*400, 2)
    with torch.no_grad():
        regions = model.head(grid.to(next(model.parameters()).device)).argmax(1).cpu().reshape(400, 400)
    colors = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(9, 7.8))
    box = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    ax.imshow(regions.numpy(), origin="lower", extent=box, aspect="auto",
              cmap=ListedColormap(colors), vmin=-0.5, vmax=9.5, alpha=0.3, interpolation="nearest")
    ax.contour(xs.numpy(), ys.numpy(), regions.numpy(), levels=torch.arange(-0.5, 10).tolist(), colors="black",
               linewidths=0.5)
    ax.scatter(codes[:, 0], codes[:, 1], c=[colors[int(d)] for d in labels], s=5, alpha=0.8)
    for digit in range(10):  # name each region at the middle of its own test digits
        mine = codes[labels.cpu() == digit]
        if len(mine):
            ax.text(*mine.median(0).values.tolist(), str(digit), fontsize=16, weight="bold", ha="center",
                    va="center", bbox={"boxstyle": "circle", "facecolor": "white", "edgecolor": colors[digit]})
    pair_text = ", ".join(f"{a}/{b} ({count})" for a, b, count in pairs)
    ax.set(xlim=box[:2], ylim=box[2:], xlabel="bottleneck number 1", ylabel="bottleneck number 2",
           title=f"A network squeezed through 2 numbers (784 -> 128 -> 2 -> 10, test accuracy {100 * accuracy:.1f}%)\n"
                 f"background = the digit it predicts at each point; black lines = decision boundaries;\n"
                 f"dots = {len(labels):,} test digits in their true colour. Most confused pairs: {pair_text}\n"
                 f"07 settings: {made}")
    ax.title.set_fontsize(10)
    return dl_utils.finish_figure(fig, path, show=show)


def run(data, args, device, *, n_digits: int, made: str) -> dict:
    """Train the 2-number network, draw its plane (decision_boundary.png); its measured results."""
    model, history = train_bottleneck(data, epochs=args.epochs, lr=args.lr, device=device)
    accuracy = dl_utils.evaluate(model, data.test_loader, nn.CrossEntropyLoss())["accuracy"]
    images, labels = data.test_loader.images, data.test_loader.labels
    with torch.no_grad():
        predictions = model(images).argmax(1)  # (10000,): a small network, all test digits at once
    pairs = dl_utils.most_confused_pairs(dl_utils.confusion_matrix(predictions, labels), k=3, both_ways=True)
    plot_decision_boundary(model, images[:n_digits], labels[:n_digits], accuracy, pairs,
                           args.out_dir / "decision_boundary.png", made=made, show=args.show)
    print(f"Through 2 numbers it still reads {100 * accuracy:.1f}% of the test digits. decision_boundary.png: the "
          "boundaries are straight lines (the last layer is linear); the pairs it mixes up most sit side by side: "
          + ", ".join(f"{a}/{b}" for a, b, _ in pairs))
    return {"test_accuracy": accuracy, "epochs": args.epochs, "val_accuracy": history["val_accuracy"][-1],
            "most_confused_pairs": [{"digits": [a, b], "count": c} for a, b, c in pairs]}
