"""03's MLP next to 06's CNN: their last runs side by side, as a table and as mlp_vs_cnn.png.

06_cnn_mnist.py points here: its step 7 calls `compare` below with this
run's numbers; it reads what 03_train_mnist.py left in the same --out-dir
(03_train_mnist.json, else mnist_model.pth). Without a run of 03 the
figure says so and the table shows 03's parameter count only.

Run it
    python 03_train_mnist.py && python 06_cnn_mnist.py     # the same --out-dir for both

Why a file of its own: 06 teaches convolutions; this is bookkeeping about
another lesson's files (which JSON keys 03 writes, what to do when it is
missing or ran on a subset) and a three-panel figure, about 120 lines. The
numbers that explain WHY the CNN wins (parameters per layer, multiply-adds)
stay in 06's section 3. It uses dl_utils and libraries, never a lesson.
"""

import json
from pathlib import Path

import dl_utils
import matplotlib.pyplot as plt  # after dl_utils, which picks the file-only backend when there is no screen


def load_mlp_results(out_dir: Path) -> dict | None:
    """03's measurements, from 03_train_mnist.json or else from mnist_model.pth; None if 03 never ran."""
    json_path = Path(out_dir) / "03_train_mnist.json"
    if json_path.is_file():
        try:
            saved = json.loads(json_path.read_text())
            return {"source": json_path.name, "parameters": saved["parameters"],
                    "test_accuracy": saved["test_accuracy"], "train_seconds": saved["train_seconds"],
                    "epochs": saved.get("epochs_run"), "subset": saved.get("hyperparameters", {}).get("subset"),
                    "val_accuracy": saved.get("history", {}).get("val_accuracy")}
        except (ValueError, KeyError, AttributeError):
            print(f"(Could not read {json_path}: not 03's results. Trying mnist_model.pth.)")
    model_path = Path(out_dir) / "mnist_model.pth"
    if model_path.is_file():
        checkpoint = dl_utils.load_checkpoint(model_path)
        metrics, hyper = checkpoint.get("metrics", {}), checkpoint.get("hyperparameters", {})
        if "test_accuracy" in metrics:
            return {"source": model_path.name,
                    "parameters": sum(t.numel() for k, t in checkpoint["state_dict"].items()
                                      if k.endswith(("weight", "bias"))),
                    "test_accuracy": metrics["test_accuracy"], "train_seconds": metrics.get("train_seconds"),
                    "epochs": hyper.get("epochs"), "subset": hyper.get("subset"), "val_accuracy": None}
    return None


# 03 trains for 10 epochs, 06 for 2: a table of final numbers compares
# unequal budgets. mlp_vs_cnn.png therefore draws both runs' validation
# error after EVERY epoch, so you can compare them at the same epoch.
def compare(cnn: dict, description: dict, out_dir: Path, *, show: bool, note: str) -> dict | None:
    """03's last run (if any) beside this one, as a table and as mlp_vs_cnn.png; returns 03's numbers or None.

    `cnn`: parameters, test_accuracy, train_seconds, epochs, val_accuracy (a list per epoch);
    `description`: 06's describe_model (mlp_layers, mlp_parameters, parameters_by_layer).
    """
    mlp = load_mlp_results(out_dir)
    print(f"{'model':10s} {'parameters':>10s} {'test accuracy':>14s} {'training':>9s} {'epochs':>7s}")
    for name, row in (("MLP (03)", mlp), ("CNN (06)", cnn)):
        if row is None:
            print(f"{name:10s} {description['mlp_parameters']:>10,}   (no 03 results in {out_dir}: run "
                  f"03_train_mnist.py --out-dir {out_dir})")
            continue
        seconds = f"{row['train_seconds']:.1f}s" if row.get("train_seconds") is not None else "?"
        print(f"{name:10s} {row['parameters']:>10,} {100 * row['test_accuracy']:>13.2f}% {seconds:>9s} "
              f"{row.get('epochs') or '?':>7}")
    mlp_epochs, mlp_val = (mlp or {}).get("epochs"), (mlp or {}).get("val_accuracy") or []
    if mlp_epochs and mlp_epochs != cnn["epochs"] and len(mlp_val) >= cnn["epochs"]:
        at = cnn["epochs"]
        print(f"The two runs trained for different numbers of epochs ({mlp_epochs} and {at}). At the same epoch, "
              f"{at}: validation accuracy MLP {100 * mlp_val[at - 1]:.2f}%, CNN {100 * cnn['val_accuracy'][-1]:.2f}%.")
    if mlp and mlp.get("subset"):
        print(f"(03's last run trained on only {mlp['subset']:,} images: rerun 03 without --subset/--quick "
              "for a fair comparison.)")
    plot_mlp_vs_cnn(mlp, description["mlp_layers"], cnn, description["parameters_by_layer"],
                    Path(out_dir) / "mlp_vs_cnn.png", show=show, note=note)
    return mlp


def plot_mlp_vs_cnn(mlp: dict | None, mlp_layers: dict, cnn: dict, cnn_layers: dict, path, *, show: bool,
                    note: str = "defaults"):
    """mlp_vs_cnn.png: parameters per layer; validation error after every epoch with the final test error; time.

    The two runs need not have the same number of epochs (03 trains 10, 06 2),
    so the middle panel compares them epoch by epoch, and the time panel says
    how many epochs each bar paid for. Errors (100% - accuracy) are drawn from
    0, so "3.6 times fewer mistakes" looks like it.
    """
    fig, (ax_params, ax_error, ax_time) = plt.subplots(1, 3, figsize=(16, 5.2),
                                                       gridspec_kw={"width_ratios": [1.7, 1.4, 1]})
    names = [f"MLP {k}" for k in mlp_layers] + [f"CNN {k}" for k in cnn_layers]
    counts = list(mlp_layers.values()) + list(cnn_layers.values())
    colors = ["tab:blue"] * len(mlp_layers) + ["tab:green"] * len(cnn_layers)
    bars = ax_params.barh(names, counts, color=colors)
    ax_params.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=9)
    ax_params.set_xscale("log")  # 320 to 401,536: only a log axis shows both
    ax_params.set_xlim(100, 5e6)
    ax_params.invert_yaxis()
    ax_params.set(title="Parameters per layer (log scale): the convolutions need few", xlabel="parameters")

    rows = (("MLP (03)", mlp, "tab:blue"), ("CNN (06)", cnn, "tab:green"))
    for name, row, color in rows:
        if not row:
            continue
        if row.get("val_accuracy"):
            errors = [100 * (1 - a) for a in row["val_accuracy"]]
            ax_error.plot(range(1, len(errors) + 1), errors, "o-", color=color, label=f"{name}: validation")
        last = row.get("epochs") or len(row.get("val_accuracy") or []) or 1
        test_error = 100 * (1 - row["test_accuracy"])
        ax_error.plot([last], [test_error], "*", color=color, markersize=15, markeredgecolor="black",
                      label=f"{name}: test, after epoch {last}: {test_error:.2f}% wrong")
    if mlp is None:
        ax_error.text(0.75, 0.45, "MLP not measured:\nrun 03_train_mnist.py first", transform=ax_error.transAxes,
                      ha="center", color="gray")  # right of the CNN's 2 epochs, clear of its curve
    ax_error.set_ylim(bottom=0)
    ax_error.set_xlim(0.5, max([row.get("epochs") or 1 for _, row, _ in rows if row] + [3]) + 0.5)
    ax_error.set(title="Error (% of digits wrong) after each epoch\nthe axis starts at 0; compare at the same epoch",
                 xlabel="epoch", ylabel="% wrong (100% - accuracy)")
    ax_error.legend(fontsize=8.5, loc="upper right")

    for x, (name, row, color) in enumerate(rows):
        seconds = row.get("train_seconds") if row else None
        if seconds is None:  # 03 has not run (or did not record it): say so instead of a bar
            ax_time.text(x, 0.5, "not measured:\nrun 03 first", transform=ax_time.get_xaxis_transform(),
                         ha="center", va="center", color="gray")
            continue
        epochs = row.get("epochs")
        bar = ax_time.bar(x, seconds, color=color, width=0.6)
        ax_time.bar_label(bar, padding=3, labels=[f"{seconds:.0f} s" + (
            f"\n{epochs} epoch{'s' if epochs > 1 else ''}, {seconds / epochs:.1f} s each" if epochs else "")])
    ax_time.set_xticks([0, 1], ["MLP (03)", "CNN (06)"])
    ax_time.set_xlim(-0.6, 1.6)
    ax_time.margins(y=0.25)
    ax_time.set(title="Training time (each run's own epochs)", ylabel="seconds")

    mlp_text = (f"MLP: 03's last run, {mlp['epochs']} epochs" + (f" on {mlp['subset']:,} images" if mlp.get("subset")
                else "") + f" (from {mlp['source']})") if mlp else "MLP: run 03_train_mnist.py to measure it"
    fig.suptitle(f"03's MLP next to this CNN.   {mlp_text}.   CNN: this run, {cnn['epochs']} "
                 f"epoch{'s' if cnn['epochs'] > 1 else ''} ({note})", fontsize=10.5)
    for ax in (ax_params, ax_error, ax_time):
        ax.grid(alpha=0.3, axis="x" if ax is ax_params else "y")
    return dl_utils.finish_figure(fig, path, show=show)
