"""Run every lesson on the real MNIST and keep what it measured, for the docs.

The numbers in README.md, LEARNING_GUIDE.md, ML_CONCEPTS_EXPLAINED.md and
docs/PERFORMANCE.md are quoted from the files this script writes, and
tests/test_docs.py checks each quoted number against them. Rerun it after
changing a script, then update the docs where the numbers moved.

    python benchmarks/run_all.py --data-dir DATA_DIR            # everything (~30 min, 2-core CPU)
    python benchmarks/run_all.py --data-dir DATA_DIR --only 03_train_mnist 04_load_model
    # 07 reads the checkpoints of 07_mlp (03, 3 epochs) and 07_cnn (06, 1 epoch), run into its folder first
    python benchmarks/run_all.py --data-dir DATA_DIR --only 07_mlp 07_cnn 07_look_inside
    # own_digits reads the checkpoints of earlier runs; --from names the folders of a previous run_all
    python benchmarks/run_all.py --data-dir DATA_DIR --only own_digits \
        --from 03_train_mnist=DIR1 06_cnn_mnist=DIR1 06_augment=DIR2

Each run is a separate process, as a learner would start it, timed from
start to exit with its peak memory (RSS). For run NAME it writes
    docs/results/NAME.json   the script's own results JSON + a "run" entry
                             (command, wall_seconds, peak_rss_mb, machine)
    docs/results/NAME.log    what it printed
    docs/images/NAME_*.png   the figures the guide embeds (selected runs)
A trial run can write into a scratch folder instead of docs/ (--docs-dir), e.g.
    python benchmarks/run_all.py --data-dir DATA_DIR --only 01_hello_pytorch --docs-dir outputs/trial
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"  # results/ and images/ go here (--docs-dir)

# (run name, script, extra flags, figures to keep for the docs[, options]).
# Runs sharing an out-dir see each other's files: 04 loads 03's model, and 06
# compares itself with 03's MLP, so the defaults all share one folder. A run
# with flags gets a folder of its own; a run with a "group" option (flags or not) shares that group's folder; a flag
# "{NAME}" stands for the folder of run (or group) NAME. Options "results"
# names the JSON the run writes when it is not <script stem>.json.
VARIANTS = {"group": "03_variants"}  # 03's "try this" runs share one experiments.csv, read by 05_compare_runs
# 07 reads the checkpoints of a short 03 run and a short 06 run from its own folder ("needs": run them too).
LOOK = {"group": "07_look_inside"}
LOOK_NS = {"group": "07_no_smoothing"}
RUNS = [
    ("01_hello_pytorch", "01_hello_pytorch.py", [], ["activation_functions.png"]),
    ("02_load_mnist", "02_load_mnist.py", [], ["mnist_samples.png", "mnist_statistics.png"]),
    ("03_train_mnist", "03_train_mnist.py", [], ["training_history.png"]),
    ("04_load_model", "04_load_model.py", [], ["predictions.png"]),
    ("05_experiment_architectures", "05_experiment_architectures.py", [], ["architecture_comparison.png"]),
    ("06_cnn_mnist", "06_cnn_mnist.py", [], ["cnn_training_history.png", "cnn_filters.png",
                                            "cnn_feature_maps.png", "confusion_matrix.png",
                                            "misclassified.png", "mlp_vs_cnn.png", "adversarial_example.png"]),
    # "Try this" experiments on 03: one setting changed at a time.
    ("03_hidden_32", "03_train_mnist.py", ["--hidden", "32"], [], VARIANTS),
    ("03_hidden_512", "03_train_mnist.py", ["--hidden", "512"], [], VARIANTS),
    ("03_dropout", "03_train_mnist.py", ["--dropout", "0.2"], ["training_history.png"], VARIANTS),
    ("03_batch_norm", "03_train_mnist.py", ["--batch-norm"], [], VARIANTS),
    ("03_sgd", "03_train_mnist.py", ["--optimizer", "sgd", "--lr", "0.01"], [], VARIANTS),
    ("03_sgd_momentum", "03_train_mnist.py", ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"], [], VARIANTS),
    ("03_no_normalize", "03_train_mnist.py", ["--no-normalize"], [], VARIANTS),
    ("03_sgd_no_normalize", "03_train_mnist.py", ["--optimizer", "sgd", "--lr", "0.01", "--no-normalize"], [], VARIANTS),
    ("03_early_stopping", "03_train_mnist.py", ["--epochs", "30", "--patience", "3"], ["training_history.png"], VARIANTS),
    # The four shapes of a training curve (LEARNING_GUIDE.md, "Reading training curves").
    ("03_overfit", "03_train_mnist.py", ["--subset", "1000", "--epochs", "40", "--hidden", "512"],
     ["training_history.png"], VARIANTS),
    ("03_underfit", "03_train_mnist.py", ["--hidden", "2"], ["training_history.png"], VARIANTS),
    ("03_lr_too_high", "03_train_mnist.py", ["--lr", "0.05"], ["training_history.png"], VARIANTS),
    ("06_augment", "06_cnn_mnist.py", ["--augment"], []),
    # Headline numbers with their spread: the defaults again with other seeds (option "seeds").
    ("03_seeds", "03_train_mnist.py", [], [], {"seeds": [0, 1, 2, 3, 4]}),
    # 03's speed "try this" runs (docs/PERFORMANCE.md), each against 03's defaults (batch 64, fused Adam):
    # batch 128 (the same seeds as 03_seeds, compared on validation) and Adam's textbook for-loop update
    # instead of the fused kernel (seed 0).
    ("03_batch_128", "03_train_mnist.py", ["--batch-size", "128"], [], {"seeds": [0, 1, 2, 3, 4]}),
    ("03_no_fused", "03_train_mnist.py", ["--no-fused"], []),
    # 06's causal claims, each isolated (LEARNING_GUIDE.md, 06): OneCycle against a constant learning rate (03's
    # 0.001) for the same 2 epochs; and the pixels shuffled by one fixed permutation ("why convolutions"), 1 epoch
    # each way.
    ("06_constant_lr", "06_cnn_mnist.py", ["--schedule", "constant", "--lr", "0.001"], []),
    ("06_epochs_1", "06_cnn_mnist.py", ["--epochs", "1"], []),
    # 06's label smoothing (0.05), chosen on validation over seeds 0-4 against 0 (plain cross-entropy, as in 03)
    # and 0.1: the three settings, five seeds each.
    ("06_seeds", "06_cnn_mnist.py", [], [], {"seeds": [0, 1, 2, 3, 4]}),
    ("06_no_smoothing", "06_cnn_mnist.py", ["--label-smoothing", "0"], [], {"seeds": [0, 1, 2, 3, 4]}),
    ("06_smoothing_0_1", "06_cnn_mnist.py", ["--label-smoothing", "0.1"], [], {"seeds": [0, 1, 2, 3, 4]}),
    ("06_pixels_shuffled", "06_cnn_mnist.py", ["--epochs", "1", "--pixels", "shuffled"], ["cnn_feature_maps.png"]),
    # The experiment log of all the 03 variants above, read back.
    ("05_compare_runs", "05_experiment_architectures.py", ["--compare-runs", "hidden"], ["runs_by_hidden.png"],
     {**VARIANTS, "results": "compare_runs"}),
    # Break it on purpose (issue 11): 03 with one thing spoilt (LEARNING_GUIDE.md "Break it").
    ("03_init_zeros", "03_train_mnist.py", ["--init", "zeros", "--epochs", "2", "--subset", "5000"], []),
    ("03_init_constant", "03_train_mnist.py", ["--init", "constant", "--epochs", "2", "--subset", "5000"], []),
    ("03_random_labels", "03_train_mnist.py", ["--labels", "random", "--epochs", "3", "--subset", "5000"], []),
    ("03_memorise", "03_train_mnist.py", ["--labels", "random", "--subset", "1000", "--hidden", "512",
                                          "--epochs", "40"], ["training_history.png"]),
    ("03_epochs_3", "03_train_mnist.py", ["--epochs", "3"], []),
    ("03_epochs_3_shuffled", "03_train_mnist.py", ["--epochs", "3", "--pixels", "shuffled"], []),
    ("03_mse", "03_train_mnist.py", ["--loss", "mse"], ["training_history.png"]),
    ("03_overfit_early_stopping", "03_train_mnist.py", ["--subset", "1000", "--epochs", "40", "--hidden", "512",
                                                        "--patience", "3"], []),
    # Normalisation isolated: centring only, scaling only, both, neither; Adam and plain SGD.
    *[(f"03_norm_{how}_{name}", "03_train_mnist.py", ["--normalize", how, *flags], [])
      for name, flags in (("adam", []), ("sgd", ["--optimizer", "sgd", "--lr", "0.01"]))
      for how in ("both", "center", "scale", "none")],
    # Break it on purpose (issue 11): 05's experiments on pitfalls, one flag each.
    ("05_lr_sweep", "05_experiment_architectures.py", ["--arch", "two-layer", "--lr-sweep", "0.0001,0.001,0.01,0.1"],
     ["lr_sweep.png"], {"results": "lr_sweep"}),
    ("05_relu_vs_tanh", "05_experiment_architectures.py", ["--arch", "two-layer", "tanh", "--epochs", "15"],
     ["architecture_comparison.png"]),
    ("05_gradients", "05_experiment_architectures.py", ["--gradients"], ["gradient_norms.png"],
     {"results": "gradients"}),
    ("05_leakage", "05_experiment_architectures.py", ["--leakage", "20", "--subset", "5000", "--epochs", "2"],
     ["leakage.png"], {"results": "leakage"}),
    ("07_mlp", "03_train_mnist.py", ["--epochs", "3"], [], LOOK),
    ("07_cnn", "06_cnn_mnist.py", ["--epochs", "1"], [], LOOK),
    ("07_look_inside", "07_look_inside.py", [], ["mlp_weights.png", "saliency.png", "feature_space.png",
                                                 "decision_boundary.png", "confidence.png", "fgsm_vs_epsilon.png"],
     {**LOOK, "needs": ["07_mlp", "07_cnn"]}),
    # The same look with a CNN trained without label smoothing (06's --label-smoothing 0): what the smoothing
    # does to the CNN's confidence (calibration), isolated. Its own folder, so its MLP is the same 3-epoch 03.
    ("07_ns_mlp", "03_train_mnist.py", ["--epochs", "3"], [], LOOK_NS),
    ("07_ns_cnn", "06_cnn_mnist.py", ["--epochs", "1", "--label-smoothing", "0"], [], LOOK_NS),
    ("07_no_smoothing", "07_look_inside.py", [], ["confidence.png"],
     {**LOOK_NS, "needs": ["07_ns_mlp", "07_ns_cnn"], "results": "07_look_inside"}),
    # The plan's question "how would YOU explain to a computer how to recognise a 0 vs an 8?": rules written by
    # hand (ink, holes, templates; choices on validation) against 03's MLP over seeds 0-2, the test read once.
    ("baseline_rules", "benchmarks/baseline_rules.py", [], [], {"results": "baseline_rules"}),
    # The exercises' challenges on the real MNIST (exercises/check.py --challenge), the reference solutions,
    # 3 seeds each: exercises/solutions/challenges.py must pass on every seed.
    ("challenge_mlp", "exercises/check.py", ["--challenge", "mlp", "--solutions", "--seeds", "3"], [],
     {"results": "challenge_mlp"}),
    ("challenge_cnn", "exercises/check.py", ["--challenge", "cnn", "--solutions", "--seeds", "3"], [],
     {"results": "challenge_cnn"}),
    ("challenge_few", "exercises/check.py", ["--challenge", "few", "--solutions", "--seeds", "3"], [],
     {"results": "challenge_few"}),
    # Speed (docs/PERFORMANCE.md): the three ratios in one run, then one setting at a time.
    ("bench_training", "benchmarks/bench_training.py", [], [], {"results": "bench_training"}),
    ("bench_training_experiments", "benchmarks/bench_training.py", ["--experiments"], [],
     {"results": "bench_training_experiments"}),
    # Own pictures (30 per seed): 03's MLP, 06's CNN and 06's CNN trained with --augment.
    *[(name, "benchmarks/own_digits.py",
       ["--seeds", "10", *tilt, "--model", "{03_train_mnist}/mnist_model.pth", "{06_cnn_mnist}/cnn_model.pth",
        "{06_augment}/cnn_model.pth"], [], {"results": "own_digits"})
      for name, tilt in (("own_digits", []), ("own_digits_slanted", ["--tilt", "25"]))],
    # 04 --draw without a screen: a 1, then a bar on top, drawn for 06's CNN (LEARNING_GUIDE.md, 04).
    ("04_draw", "benchmarks/draw_replay.py", ["--model", "{06_cnn_mnist}/cnn_model.pth"], ["screenshot.png"],
     {"results": "draw_replay"}),
    # What the models cannot do (issue 22): 03's MLP and 06's CNN shown inverted and shifted test digits,
    # letters and noise; and what colour or another size does to them.
    ("limitations", "benchmarks/limitations.py", ["--mlp", "{03_train_mnist}/mnist_model.pth",
                                                  "--cnn", "{06_cnn_mnist}/cnn_model.pth"], ["limitations.png"]),
]


def machine() -> dict:
    """Where the numbers were measured."""
    sys.path.insert(0, str(REPO))
    from course.records import cpu_model  # the CPU's name, as every results file records it

    return {"platform": platform.platform(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def run(name: str, script: str, flags: list, out_dir: Path, data_dir: str, *,
        shown_flags: list | None = None) -> dict:
    """Start the script as its own process; return wall time, peak RSS and its output.

    `shown_flags` is how the command is written in the results and the log
    ({NAME} for the folder of run NAME, as in RUNS), not the /tmp paths.
    """
    command = [sys.executable, str(REPO / script), "--data-dir", data_dir, "--out-dir", str(out_dir), *flags]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, cwd=REPO)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # the rusage of this one child
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}):\n{output[-3000:]}")
    shown_flags = shown_flags or flags
    shown = ["python", script, *shown_flags]
    for used, written in zip(flags, shown_flags):  # e.g. (a temporary folder)/cnn_model.pth -> {06_cnn_mnist}/cnn_model.pth
        if used != written:
            output = output.replace(used, written)
    # The log reads as if run from the repo with the default outputs/ folder.
    output = output.replace(str(out_dir), "outputs").replace(str(REPO) + "/", "")
    output = output.replace(str(Path(data_dir).resolve()), "DATA_DIR")  # no path of this machine in the docs
    return {"command": " ".join(shown), "wall_seconds": round(wall, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "output": output}


def run_seeds(name: str, script: str, flags: list, seeds: list, data_dir: str, stem: str) -> tuple[dict, dict]:
    """Run the script once per seed (each in a folder of its own); return the spread and the logs.

    The results hold `test_accuracy_per_seed` (and validation, time) plus
    mean, min, max and standard deviation: what a learner's own run of the
    same command should land near.
    """
    import statistics

    runs, outputs = [], []
    for seed in seeds:
        out_dir = Path(tempfile.mkdtemp(prefix=f"{name}_{seed}_"))
        seeded = [*flags, "--seed", str(seed)]
        print(f"== {name}: python {script} {' '.join(seeded)}  (out-dir {out_dir})", flush=True)
        measured = run(name, script, seeded, out_dir, data_dir)
        result = json.loads((out_dir / f"{stem}.json").read_text())
        runs.append({"seed": seed, "test_accuracy": result["test_accuracy"],
                     "best_val_accuracy": result["best_val_accuracy"], "train_seconds": result["train_seconds"],
                     "wall_seconds": measured["wall_seconds"], "peak_rss_mb": measured["peak_rss_mb"],
                     "load_average": result.get("load_average")})
        outputs.append(f"$ python {script} {' '.join(seeded)}\n{measured['output']}")
    accuracies = [r["test_accuracy"] for r in runs]
    results = {"script": Path(script).stem, "flags": flags, "seeds": seeds, "runs": runs,
               "test_accuracy_per_seed": accuracies,
               "test_accuracy_mean": statistics.mean(accuracies), "test_accuracy_min": min(accuracies),
               "test_accuracy_max": max(accuracies), "test_accuracy_std": statistics.stdev(accuracies),
               "best_val_accuracy_mean": statistics.mean(r["best_val_accuracy"] for r in runs),
               **{k: result.get(k) for k in ("device", "cpu", "threads", "torch_version")}}
    measured = {"command": f"python {script} {' '.join(flags)} --seed S, S in {seeds}",
                "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 2),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "output": "\n".join(outputs)}
    return results, measured


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding MNIST/raw/")
    parser.add_argument("--only", nargs="*", help="run names to (re)run (default: all)")
    parser.add_argument("--from", dest="folders", nargs="*", default=[], metavar="NAME=DIR",
                        help="use DIR as the folder of run (or group) NAME, e.g. from an earlier run_all")
    parser.add_argument("--docs-dir", type=Path, default=DOCS,
                        help="write results/ and images/ here (default: docs/; a scratch folder for a trial run)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or []) - {run[0] for run in RUNS})
    if unknown:  # e.g. an old name (03_batch_64 became 03_batch_128 when 03's default became batch 64)
        raise SystemExit(f"--only: no run named {', '.join(unknown)}. The runs: {', '.join(run[0] for run in RUNS)}")
    results_dir, images_dir = args.docs_dir / "results", args.docs_dir / "images"
    results_dir.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    shared = Path(tempfile.mkdtemp(prefix="run_all_"))
    given = dict(item.split("=", 1) for item in args.folders)  # run or group name -> its out-dir
    folders = dict(given)
    for name, script, flags, figures, *options in RUNS:
        options = options[0] if options else {}
        if args.only and name not in args.only:
            continue
        # Default runs share one out-dir; variants get their own (or their group's), so they
        # never overwrite the defaults' mnist_model.pth.
        group = options.get("group")
        needs = [run for run in options.get("needs", []) if args.only and run not in args.only]
        if needs and group not in given:
            raise SystemExit(f"{name} reads the files of {', '.join(needs)}: add them to --only, "
                             f"or give --from {group}=DIR (the folder of an earlier run).")
        if group:  # a group's runs share one folder, with or without flags
            out_dir = Path(folders.get(group) or tempfile.mkdtemp(prefix=f"{group}_"))
            folders[group] = str(out_dir)
        elif not flags:  # the defaults' shared folder, or the one --from gives (e.g. --from 04_load_model=DIR)
            out_dir = Path(folders.get(name) or folders.get("03_train_mnist") or shared)
        else:
            out_dir = Path(tempfile.mkdtemp(prefix=f"{name}_"))
        folders[name] = str(out_dir)
        template = flags
        try:
            flags = [flag.format(**folders) for flag in flags]
        except KeyError as missing:
            raise SystemExit(f"{name} needs the folder of run {missing}: add it to --only, or give --from {missing.args[0]}=DIR.")
        if args.only and not flags and name in ("04_load_model", "06_cnn_mnist") \
                and not (out_dir / "mnist_model.pth").exists() and "03_train_mnist" not in args.only:
            # 04 and 06 need 03's model, from this run or from a folder given with --from.
            raise SystemExit(f"{name} needs 03's model: add 03_train_mnist to --only, or give --from 03_train_mnist=DIR.")
        stem = options.get("results", Path(script).stem)
        if "seeds" in options:
            results, measured = run_seeds(name, script, flags, options["seeds"], args.data_dir, stem)
        else:
            print(f"== {name}: python {script} {' '.join(flags)}  (out-dir {out_dir})", flush=True)
            measured = run(name, script, flags, out_dir, args.data_dir, shown_flags=template)
            results = json.loads((out_dir / f"{stem}.json").read_text())
        results["run"] = {k: measured[k] for k in ("command", "wall_seconds", "peak_rss_mb")}
        results["run"]["machine"] = machine()
        results["run"]["date"] = time.strftime("%Y-%m-%d")
        text = json.dumps(results, indent=2) + "\n"
        for folder in sorted(set(folders.values()) | {str(out_dir)}, key=len, reverse=True):
            text = text.replace(folder, "outputs")  # paths of this machine read as a learner's
        (results_dir / f"{name}.json").write_text(text.replace(str(Path(args.data_dir).resolve()), "DATA_DIR"))
        (results_dir / f"{name}.log").write_text(measured["output"])
        for figure in figures:
            shutil.copy(out_dir / figure, images_dir / f"{name}_{figure}")
        print(f"   {measured['wall_seconds']:.1f} s, peak {measured['peak_rss_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
