"""Tests for the experiment log read back: dl_utils.read_experiments ... plot_runs_against and
05_experiment_architectures.py --compare-runs (extras/compare_runs.py).

The end-to-end test trains 03 a few times on the tiny synthetic MNIST (conftest.py), so the
log it reads is one the real scripts wrote; the unit tests use hand-made runs whose ranking
is known.
"""

import json

import matplotlib.image
import pytest

import dl_utils
from conftest import load_script

arch = load_script("05_experiment_architectures")
train = load_script("03_train_mnist")

FAST = ["--epochs", "1", "--subset", "300", "--batch-size", "100"]


def run(script: str, val: float, test: float, **settings) -> dict:
    """A hand-made row as read_experiments returns it."""
    return {"time": "2026-11-21T10:00:00", "script": script, **settings, "parameters": 10,
            "best_val_accuracy": val, "test_accuracy": test, "train_seconds": 1.5, "device": "cpu"}


def summary(script: str, hyperparameters: dict, val: float) -> dict:
    """What dl_utils.summarize_run hands to log_experiment, reduced to what it reads."""
    return {"date": "2026-11-21T10:00:00", "script": script, "hyperparameters": hyperparameters,
            "parameters": 101_770, "best_val_accuracy": val, "test_accuracy": val - 0.01,
            "train_seconds": 12.25, "device": "cpu (2 threads)"}


def test_the_log_reads_back_with_its_types(tmp_path):
    dl_utils.log_experiment(tmp_path, summary("03_train_mnist", {"hidden": 128, "lr": 0.001, "batch_norm": False,
                                                                  "patience": None, "optimizer": "adam"}, 0.978))
    dl_utils.log_experiment(tmp_path, summary("05_experiment_architectures", {"arch": "tanh", "lr": 0.01}, 0.97))
    first, second = dl_utils.read_experiments(tmp_path / "experiments.csv")
    assert first["hidden"] == 128 and isinstance(first["hidden"], int)
    assert first["lr"] == 0.001 and first["batch_norm"] is False and first["patience"] is None
    assert first["optimizer"] == "adam" and first["best_val_accuracy"] == 0.978
    assert second["arch"] == "tanh" and second["hidden"] is None  # a column its script does not have


def test_best_runs_are_ranked_by_validation_not_test():
    runs = [run("03", 0.95, 0.99), run("03", 0.98, 0.96), run("03", 0.97, 0.97), run("03", None, 0.99)]
    best = dl_utils.best_runs(runs, k=2)
    assert [r["best_val_accuracy"] for r in best] == [0.98, 0.97]
    last = [{**r, "final_val_accuracy": 1 - (r["best_val_accuracy"] or 0)} for r in runs]  # the reverse order
    assert [r["best_val_accuracy"] for r in dl_utils.best_runs(last, k=2)] == [None, 0.95]  # by the last epoch's


def test_filter_runs_compares_values_not_text():
    runs = [run("03", 0.9, 0.9, dropout=0.0, batch_norm=False, lr=0.001),
            run("03", 0.9, 0.9, dropout=0.2, batch_norm=True, lr=0.01)]
    assert len(dl_utils.filter_runs(runs, {"dropout": "0"})) == 1  # 0 == 0.0
    assert dl_utils.filter_runs(runs, {"batch_norm": "true"})[0]["lr"] == 0.01
    assert dl_utils.filter_runs(runs, {"lr": "1e-3"})[0]["dropout"] == 0.0
    with pytest.raises(dl_utils.CourseError, match="no column hiden"):
        dl_utils.filter_runs(runs, {"hiden": "128"})


def test_accuracy_by_value_groups_best_and_mean():
    runs = [run("03", 0.90, 0.9, hidden=32), run("03", 0.96, 0.9, hidden=128), run("03", 0.98, 0.9, hidden=128),
            run("05", 0.97, 0.9)]  # no hidden: left out
    rows = dl_utils.accuracy_by_value(runs, "hidden")
    assert [r["value"] for r in rows] == [32, 128] and rows[1]["runs"] == 2
    assert rows[1]["best"] == 0.98 and rows[1]["mean"] == pytest.approx(0.97)
    assert rows[1]["accuracy"] == "best_val_accuracy"  # an older log: only the best epoch's
    logged = [{**r, "final_val_accuracy": r["best_val_accuracy"] - 0.01} for r in runs]
    rows = dl_utils.accuracy_by_value(logged, "hidden")
    assert rows[1]["accuracy"] == "final_val_accuracy" and rows[1]["best"] == pytest.approx(0.97)


def test_varying_settings_and_table():
    runs = [run("03_train_mnist", 0.98, 0.97, hidden=128, lr=0.001, seed=0),
            run("03_train_mnist", 0.96, 0.955, hidden=32, lr=0.001, seed=0)]
    varying, constant = dl_utils.varying_settings(runs)
    assert varying == ["hidden"] and constant == {"lr": 0.001, "seed": 0}
    table = dl_utils.format_runs_table(runs, varying).splitlines()
    assert table[0].split() == ["#", "hidden", "best", "val", "test", "acc", "seconds"]
    assert table[1].split() == ["1", "128", "98.00%", "97.00%", "1.5"]


def test_the_table_fits_the_width_and_names_what_it_left_out():
    """Eleven differing settings would make a table far wider than a terminal: the last ones are left out."""
    settings = {f"setting_{i:02d}": [f"value-{i}-a", f"value-{i}-b"] for i in range(11)}
    runs = [run("03_train_mnist", 0.9 + 0.01 * k, 0.9, **{name: values[k] for name, values in settings.items()})
            for k in range(2)]
    lines = dl_utils.format_runs_table(runs, list(settings), width=100).splitlines()
    assert max(len(line) for line in lines) <= 100
    header = lines[0].split()
    assert header[:2] == ["#", "setting_00"] and "setting_10" not in header
    assert "no room in 100 columns for" in " ".join(lines[3:]) and "setting_10" in " ".join(lines[3:])
    wide = dl_utils.format_runs_table(runs, list(settings), width=1000).splitlines()
    assert len(wide) == 3 and "setting_10" in wide[0] and max(map(len, wide)) > 100  # the check can fail


@pytest.mark.parametrize("setting, values", [("lr", [0.0001, 0.001, 0.01]), ("optimizer", ["adam", "sgd", "adam"])])
def test_plot_runs_against_numbers_and_names(tmp_path, setting, values):
    runs = [run("03_train_mnist" if i % 2 else "05_experiment_architectures", 0.9 + 0.01 * i, 0.9, **{setting: v})
            for i, v in enumerate(values)]
    path = dl_utils.plot_runs_against(runs, setting, tmp_path / "runs.png")
    image = matplotlib.image.imread(path)
    assert image.shape[1] >= 600 and image.std() > 0.01


def test_05_compare_runs_reads_what_03_wrote(tiny_mnist, tmp_path, capsys):
    common = ["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), *FAST]
    trained = [train.main([*common, "--hidden", str(h), "--lr", str(lr)])
               for h, lr in ((8, 0.01), (32, 0.01), (32, 0.001))]
    capsys.readouterr()
    results = arch.main(["--out-dir", str(tmp_path), "--compare-runs", "hidden"])  # no --data-dir: trains nothing
    out = capsys.readouterr().out
    assert results["runs"] == 3 and results["setting"] == "hidden"
    last_val = max(t["final_val_accuracy"] for t in trained)  # the last epoch's, as 03 printed it
    assert results["best"][0]["final_val_accuracy"] == pytest.approx(last_val, abs=1e-4)
    by_value = {row["value"]: row for row in results["by_value"]}
    assert set(by_value) == {8, 32} and by_value[32]["runs"] == 2
    assert sorted(results["varying"]) == ["hidden", "lr"] and "Careful: lr also changed" in out
    assert json.loads((tmp_path / "compare_runs.json").read_text())["runs"] == 3
    assert matplotlib.image.imread(tmp_path / "runs_by_hidden.png").shape[1] >= 600

    only = arch.main(["--out-dir", str(tmp_path), "--compare-runs", "lr", "--where", "hidden=32"])
    assert only["runs"] == 2 and only["varying"] == ["lr"]
    assert "Careful" not in capsys.readouterr().out  # lr is the only setting that changed


@pytest.mark.parametrize("where", [["--where", "hidden=32", "--where", "lr=0.01"], ["--where", "hidden=32", "lr=0.01"],
                                   ["--where", "lr=0.01", "--where", "hidden=32"]])
def test_every_where_applies(tmp_path, where):
    """--where given twice keeps the runs that match BOTH (it used to keep only the last --where)."""
    for hidden, lr in ((8, 0.01), (32, 0.01), (32, 0.001)):
        dl_utils.log_experiment(tmp_path, summary("03_train_mnist", {"hidden": hidden, "lr": lr}, 0.9 + hidden / 1000))
    results = arch.main(["--out-dir", str(tmp_path), "--compare-runs", "hidden", *where])
    assert results["runs"] == 1 and results["best"][0]["hidden"] == 32 and results["best"][0]["lr"] == 0.01
    assert results["where"] == [w for w in where if w != "--where"]  # recorded as typed, all of them
    with pytest.raises(dl_utils.CourseError, match="None of the 3 runs"):
        arch.main(["--out-dir", str(tmp_path), "--compare-runs", "hidden", "--where", "lr=0.01", "--where", "lr=0.001"])


def test_runs_of_different_lessons_are_not_mixed(tmp_path, capsys):
    for lr in (0.001, 0.01, 0.1):
        dl_utils.log_experiment(tmp_path, summary("03_train_mnist", {"hidden": 128, "lr": lr, "optimizer": "adam"},
                                                  0.97))
    for lr, seed in ((0.001, 0), (0.001, 1)):
        dl_utils.log_experiment(tmp_path, summary("06_cnn_mnist", {"lr": lr, "seed": seed, "label_smoothing": 0.05},
                                                  0.99))
    results = arch.main(["--out-dir", str(tmp_path), "--compare-runs", "lr"])
    out = capsys.readouterr().out
    assert results["compared_script"] == "03_train_mnist" and results["runs"] == 3  # the most runs with an lr
    assert results["other_scripts"] == {"06_cnn_mnist": 2} and "--where script=06_cnn_mnist" in " ".join(out.split())
    assert {run["script"] for run in results["best"]} == {"03_train_mnist"}
    assert "label_smoothing" not in out  # a 06 setting: no column, no "same in all" entry
    assert max(len(line) for line in out.splitlines() if str(tmp_path) not in line) <= 100
    cnn = arch.main(["--out-dir", str(tmp_path), "--compare-runs", "lr", "--where", "script=06_cnn_mnist"])
    assert cnn["compared_script"] == "06_cnn_mnist" and cnn["runs"] == 2 and cnn["other_scripts"] == {}


@pytest.mark.parametrize("flags, message", [
    (["--compare-runs", "lr"], "no experiment log"),
    (["--compare-runs", "hiden"], "has a setting called 'hiden'"),
    (["--compare-runs", "lr", "--where", "hidden=7"], "None of the 1 runs"),
    (["--compare-runs", "lr", "--where", "colour=red"], "no column colour"),
    (["--where", "hidden=128"], "--where only filters"),
])
def test_05_compare_runs_explains_bad_requests(tmp_path, flags, message):
    if message != "no experiment log":
        dl_utils.log_experiment(tmp_path, summary("03_train_mnist", {"hidden": 128, "lr": 0.001}, 0.97))
    with pytest.raises(dl_utils.CourseError, match=message) as caught:
        arch.main(["--out-dir", str(tmp_path), *flags])
    assert caught.value.code != 0


def test_05_where_needs_setting_equals_value(capsys):
    with pytest.raises(SystemExit) as caught:
        arch.main(["--compare-runs", "lr", "--where", "optimizer"])
    assert caught.value.code == 2 and "SETTING=VALUE" in capsys.readouterr().err


def test_a_choice_spelt_true_stays_text_and_a_bool_is_found_as_typed():
    """--labels true is a choice, not a bool; --where batch_norm=true still finds batch_norm True."""
    from course import lab_notebook

    assert lab_notebook._cell_value("true") == "true" and lab_notebook._cell_value("True") is True
    runs = [{"labels": "true", "batch_norm": True}, {"labels": "random", "batch_norm": False}]
    assert lab_notebook.filter_runs(runs, {"labels": "true"}) == runs[:1]
    assert lab_notebook.filter_runs(runs, {"batch_norm": "true"}) == runs[:1]
    assert lab_notebook.filter_runs(runs, {"batch_norm": "False"}) == runs[1:]


def test_effects_against_noise_apply_the_ledgers_rule_to_your_own_runs():
    """Each value against the one with the most runs: effect, its standard error, and the 2x verdict."""
    runs = [{**run("03", 0.99, 0.9, hidden=128, seed=s), "final_val_accuracy": a}
            for s, a in enumerate([0.975, 0.977, 0.976])]
    runs += [{**run("03", 0.99, 0.9, hidden=32, seed=s), "final_val_accuracy": a}
             for s, a in enumerate([0.965, 0.964, 0.966])]
    runs += [{**run("03", 0.99, 0.9, hidden=64, seed=s), "final_val_accuracy": a}
             for s, a in enumerate([0.9745, 0.9775, 0.9765])]
    runs.append({**run("03", 0.99, 0.9, hidden=512, seed=0), "final_val_accuracy": 0.98})
    effects = dl_utils.effects_against_noise(runs, "hidden")
    assert effects["reference"] == 128 and effects["accuracy"] == "final_val_accuracy"  # not the best epoch's
    rows = {row["value"]: row for row in effects["rows"]}
    assert rows[32]["effect"] == pytest.approx(-1.1) and rows[32]["verdict"] == "effect"
    assert rows[32]["spread"] == pytest.approx((0.01 / 3 + 0.01 / 3) ** 0.5)  # variances 0.01 points^2
    assert rows[64]["verdict"] == "within noise"  # -0.03 points against a spread of about 0.1
    assert "verdict" not in rows[512] and rows[512]["runs"] == 1  # one run: no spread, no verdict
    older = [{k: v for k, v in r.items() if k != "final_val_accuracy"} for r in runs]
    assert dl_utils.effects_against_noise(older, "hidden")["accuracy"] == "best_val_accuracy"
