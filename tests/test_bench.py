"""benchmarks/bench_training.py and benchmarks/run_all.py on the tiny synthetic MNIST.

The verdicts of bench_training's table are tested in test_toolbox.py; here:
the standard pipeline it times 03 against feeds 03 the same numbers (so the
comparison is fair), its --standard-process mode really runs 03 on that
pipeline, and run_all.py writes a results file without this machine's paths.
"""

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dl_utils  # noqa: E402


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"test_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load("bench_training")


def test_bench_reads_03s_defaults_the_course_specification(bench):
    assert (bench.BATCH_SIZE, bench.LR, bench.EPOCHS, bench.FUSED) == (64, 1e-3, 10, True)


def test_standard_pipeline_gives_03_the_same_numbers_as_the_in_memory_one(bench, tiny_mnist):
    """Only the pipeline may differ between the two timed processes: same split, labels and pixels."""
    standard = bench.standard_mnist_data(tiny_mnist, batch_size=64, seed=0)
    memory = dl_utils.load_mnist_data(tiny_mnist, batch_size=64, seed=0)
    assert (standard.mean, standard.std) == pytest.approx((memory.mean, memory.std))
    for ours, theirs in zip((standard.train_loader, standard.val_loader, standard.test_loader),
                            (memory.train_loader, memory.val_loader, memory.test_loader)):
        assert len(ours) == len(theirs) and torch.equal(ours.labels, theirs.labels)
        assert torch.allclose(ours.images, theirs.images[:len(ours.images)], atol=1e-5)
    images, labels = next(iter(standard.val_loader))  # unshuffled: the same first batch, pixel for pixel
    first_images, first_labels = next(iter(memory.val_loader))
    assert torch.equal(labels, first_labels) and torch.allclose(images, first_images, atol=1e-5)


def test_standard_process_trains_03_on_the_standard_pipeline(bench, tiny_mnist, tmp_path, monkeypatch):
    used = []
    original = bench.standard_mnist_data
    monkeypatch.setattr(bench, "standard_mnist_data", lambda *a, **k: used.append(k) or original(*a, **k))
    with contextlib.redirect_stdout(io.StringIO()):
        bench.main(["--standard-process", "--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path),
                    "--epochs", "1", "--device", "cpu"])
    assert used and used[0]["batch_size"] == 64  # 03's own default reached the standard loaders
    saved = json.loads((tmp_path / "03_train_mnist.json").read_text())
    assert saved["epochs_run"] == 1 and saved["test_accuracy"] > 0.5  # the bars are learnt in one epoch
    assert dl_utils.load_mnist_data.__module__ == "dl_utils"  # put back afterwards


FAKE_LESSON = """
import argparse, json, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--data-dir"); parser.add_argument("--out-dir"); parser.add_argument("--epochs", type=int)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
out = pathlib.Path(args.out_dir)
print(f"read {args.data_dir}/MNIST/raw, wrote {out}/fake.json")
(out / "fake.json").write_text(json.dumps({"epochs_run": args.epochs, "data": args.data_dir, "out": str(out),
                                           "test_accuracy": 0.9 + args.seed / 100, "best_val_accuracy": 0.95,
                                           "train_seconds": 1.0 + args.seed}))
(out / "plot.png").write_bytes(b"png")
"""


def test_run_all_writes_results_logs_and_figures_without_this_machines_paths(tmp_path, monkeypatch):
    """A stand-in lesson (no torch: fast) run the way run_all runs each lesson."""
    run_all = load("run_all")
    script, data_dir = tmp_path / "fake.py", tmp_path / "data"
    script.write_text(FAKE_LESSON)
    data_dir.mkdir()
    monkeypatch.setattr(run_all, "RUNS", [("fake_run", str(script), ["--epochs", "2"], ["plot.png"],
                                           {"results": "fake"})])
    with contextlib.redirect_stdout(io.StringIO()):
        run_all.main(["--data-dir", str(data_dir), "--docs-dir", str(tmp_path / "docs")])
    text = (tmp_path / "docs" / "results" / "fake_run.json").read_text()
    results = json.loads(text)
    assert results["epochs_run"] == 2 and results["run"]["command"].endswith(" --epochs 2")
    assert results["data"] == "DATA_DIR" and results["out"] == "outputs"  # as a learner's paths read
    assert results["run"]["wall_seconds"] > 0 and results["run"]["machine"]["cores"] >= 1
    assert (tmp_path / "docs" / "results" / "fake_run.log").read_text() == \
        "read DATA_DIR/MNIST/raw, wrote outputs/fake.json\n"
    assert (tmp_path / "docs" / "images" / "fake_run_plot.png").read_bytes() == b"png"


def test_run_all_seeds_option_runs_once_per_seed_and_records_the_spread(tmp_path, monkeypatch):
    run_all = load("run_all")
    script, data_dir = tmp_path / "fake.py", tmp_path / "data"
    script.write_text(FAKE_LESSON)
    data_dir.mkdir()
    monkeypatch.setattr(run_all, "RUNS", [("fake_seeds", str(script), ["--epochs", "1"], [],
                                           {"results": "fake", "seeds": [0, 2]})])
    with contextlib.redirect_stdout(io.StringIO()):
        run_all.main(["--data-dir", str(data_dir), "--docs-dir", str(tmp_path / "docs")])
    results = json.loads((tmp_path / "docs" / "results" / "fake_seeds.json").read_text())
    assert results["test_accuracy_per_seed"] == [0.9, 0.92] and results["seeds"] == [0, 2]
    assert results["test_accuracy_mean"] == pytest.approx(0.91) and results["test_accuracy_min"] == 0.9
    assert [run["train_seconds"] for run in results["runs"]] == [1.0, 3.0]
    assert results["run"]["command"].endswith("--epochs 1 --seed S, S in [0, 2]")


def test_run_all_runs_are_unique_and_name_existing_scripts(tmp_path):
    run_all = load("run_all")
    names = [run[0] for run in run_all.RUNS]
    assert len(names) == len(set(names))
    assert [run[1] for run in run_all.RUNS if not (REPO / run[1]).is_file()] == []
    assert "03_batch_128" in names and "03_batch_64" not in names  # batch 64 is 03's default now: 03_seeds
    with pytest.raises(SystemExit, match="no run named 03_batch_64"):  # an old name is refused, not skipped
        run_all.main(["--data-dir", str(tmp_path), "--only", "03_seeds", "03_batch_64", "--docs-dir", str(tmp_path)])
