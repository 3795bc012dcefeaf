"""Confidence: when is the network sure, and can you trust it? 07's step 6.

07_look_inside.py points here and runs `run` below as its step 6, on the
logits its models gave for the test and the validation digits.

Run it
    python 07_look_inside.py            # writes confidence.png among 07's figures
    python 07_look_inside.py --quick    # the same, in seconds (the calibration itself is instant)

Why a file of its own: 07 looks inside the trained networks (their weights,
the pixels they use, their hidden features); this looks at what comes out,
the probabilities, and fits a number of its own (the temperature) on the
validation set. It uses dl_utils and libraries, never a lesson.
"""

import matplotlib.pyplot as plt
import torch

import dl_utils

N_BINS = 15  # reliability diagram: 15 confidence bins of width 0.06 (from 0.1, the least a top-1 can be)


# A model is calibrated when, among the predictions it makes with 80%
# confidence, 80% are right. The reliability diagram sorts the test digits
# into N_BINS bins by confidence and plots each bin's accuracy against its
# mean confidence: on the diagonal = calibrated. The expected calibration
# error (ECE) is the gap, averaged over the bins weighted by their size:
#     ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|
# Temperature scaling divides every logit by one number T (T > 1 = less
# sure) before the softmax. The prediction never changes (the order of the
# logits is the same); only the confidence does. T is chosen on the
# VALIDATION set (lowest cross-entropy), then measured on the test set.
def reliability(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = N_BINS) -> dict:
    """Bins of equal width from 0.1 to 1: per bin its mean confidence, accuracy and count; and the ECE."""
    edges = torch.linspace(0.1, 1.0, n_bins + 1)
    which = torch.bucketize(confidence.clamp(0.1, 1.0), edges[1:-1], right=False)  # bin 0 .. n_bins-1
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            conf, acc = confidence[inside].mean().item(), correct[inside].float().mean().item()
            ece += count / len(confidence) * abs(acc - conf)
            bins.append({"low": edges[b].item(), "high": edges[b + 1].item(), "confidence": conf,
                         "accuracy": acc, "count": count})
    return {"bins": bins, "ece": ece}


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in 0.25 ... 10 (200 values, evenly spaced in log) with the lowest cross-entropy of logits / T."""
    temperatures = torch.logspace(-0.6, 1.0, 200)
    scaled = logits[None] / temperatures[:, None, None]  # (200, N, 10): every T at once
    log_p_true = torch.log_softmax(scaled, dim=2).gather(2, labels.reshape(1, -1, 1).expand(len(temperatures), -1, 1))
    losses = -log_p_true.mean(dim=(1, 2))  # cross-entropy for each T
    return float(temperatures[losses.argmin()])


def plot_confidence(summary: dict, path, *, colors: dict, made: str, show: bool):
    fig, axes = plt.subplots(len(summary), 2, figsize=(12, 4.6 * len(summary) + 0.6), squeeze=False)
    for (name, s), (ax_hist, ax_rel) in zip(summary.items(), axes):
        bins = torch.linspace(0.1, 1.0, 19).tolist()
        for group, color in (("right", "tab:green"), ("wrong", "tab:red")):
            values = s["confidence"][s["correct"] == (group == "right")]
            if len(values):
                ax_hist.hist(values.numpy(), bins=bins, color=color, histtype="step", linewidth=2,
                             weights=[100 / len(values)] * len(values),
                             label=f"{group} ({len(values):,}): median {100 * values.median():.1f}%")
        ax_hist.set(title=f"{name}: how sure is it? (each colour sums to 100%)", xlabel="confidence (top probability)",
                    ylabel="% of the right / of the wrong answers (log scale)", yscale="log")
        ax_hist.legend(loc="upper left", fontsize=9)
        for key, color, label in (("before", colors[name], f"as trained: ECE {100 * s['before']['ece']:.2f}%"),
                                  ("after", "black", f"divided by T = {s['temperature']:.2f}: "
                                                     f"ECE {100 * s['after']['ece']:.2f}%")):
            points = s[key]["bins"]
            ax_rel.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], "-", color=color,
                        label=label)
            ax_rel.scatter([p["confidence"] for p in points], [p["accuracy"] for p in points], color=color,
                           s=[4 + 2 * p["count"] ** 0.5 for p in points], zorder=3)  # area ~ digits in the bin
        ax_rel.plot([0.1, 1], [0.1, 1], "--", color="gray", label="calibrated (accuracy = confidence)")
        ax_rel.set(title=f"{name}: reliability on the test set ({N_BINS} bins; T fitted on validation)",
                   xlabel="mean confidence in the bin", ylabel="accuracy in the bin", xlim=(0.1, 1.02), ylim=(0, 1.02))
        ax_rel.legend(loc="lower right", fontsize=9)
        for ax in (ax_hist, ax_rel):
            ax.grid(alpha=0.3)
    fig.suptitle("Left: confidence when right and when wrong. Right: is it as often right as it is sure? Below the "
                 "diagonal = over-confident;\nbigger dot = more test digits in that bin (most sit in the last one, "
                 f"above 94%: a few digits make a small bin zigzag).\n07 settings: {made}", fontsize=11)
    return dl_utils.finish_figure(fig, path, show=show)


def run(logits: dict, labels, val_logits: dict, val_labels, path, *, colors: dict, made: str, show: bool) -> dict:
    """ECE before and after temperature scaling (T from the validation logits), per model; confidence.png.

    logits and val_logits: {"MLP": (N, 10) tensor, ...} for the test and the validation digits.
    """
    summary, measured, labels = {}, {}, labels.cpu()
    for name in logits:
        temperature = fit_temperature(val_logits[name], val_labels.cpu())
        confidence, predicted = torch.softmax(logits[name], 1).max(1)
        correct = predicted == labels
        summary[name] = {"confidence": confidence, "correct": correct, "temperature": temperature,
                         "before": reliability(confidence, correct),
                         "after": reliability(torch.softmax(logits[name] / temperature, 1).max(1).values, correct)}
        wrong = confidence[~correct].median().item() if (~correct).any() else None
        measured[name] = {"expected_calibration_error": summary[name]["before"]["ece"], "temperature": temperature,
                          "expected_calibration_error_after_temperature": summary[name]["after"]["ece"],
                          "median_confidence_right": confidence[correct].median().item(),
                          "median_confidence_wrong": wrong}
        verdict = ("about right" if abs(temperature - 1) < 0.1 else
                   "over-confident: T > 1 softens it" if temperature > 1 else "under-confident: T < 1 sharpens it")
        before, after = summary[name]["before"]["ece"], summary[name]["after"]["ece"]
        print(f"{name}: expected calibration error {100 * before:.2f}%; best T on validation {temperature:.2f} "
              f"({verdict}), test ECE after dividing by T {100 * after:.2f}%. "
              f"Median confidence when right {100 * measured[name]['median_confidence_right']:.1f}%"
              + (f", when wrong {100 * wrong:.1f}%" if wrong is not None else ", and it made no mistake"))
    plot_confidence(summary, path, colors=colors, made=made, show=show)
    print("confidence.png: on the diagonal = as often right as it is sure; T moves the curve without changing a "
          "single prediction.")
    return measured
