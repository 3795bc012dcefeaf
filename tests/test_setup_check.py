"""`python dl_utils.py` checks a learner's set-up (course/setup_check.py), on the tiny synthetic MNIST.

The speed check is skipped (--speed-seconds 0) except in one test that runs it for 0.05 s.
"""

import ast
import gzip
import shutil
import subprocess
import sys

import pytest
import torch

import dl_utils
from conftest import N_TEST, REPO, load_script
from course import setup_check

NO_SPEED = ["--speed-seconds", "0"]


def check(capsys, *flags, speed_seconds="0"):
    """Run the check in-process (no speed check unless asked): (exit status, what it printed)."""
    status = setup_check.main([*flags, "--speed-seconds", speed_seconds])
    return status, capsys.readouterr().out


@pytest.fixture
def data_copy(tiny_mnist, tmp_path):
    """A copy of the tiny MNIST that a test may damage."""
    return shutil.copytree(tiny_mnist, tmp_path / "data")


def test_intact_data_and_a_writable_out_dir_pass(tiny_mnist, tmp_path, capsys):
    status, out = check(capsys, "--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "out"))
    assert status == 0, out
    assert f"{tiny_mnist / 'MNIST' / 'raw'}/ (from --data-dir)" in out
    assert "156,816 bytes, ok (200 images; not the full MNIST, which has 10,000)" in out  # 16 + 200 * 784
    assert "208 bytes, ok (200 labels" in out  # 8 + 200
    assert "not there yet; the first lesson creates it" in out and "All set" in out
    assert not (tmp_path / "out").exists(), "a check must not create the folder"
    for label in ("Python", "PyTorch", "torchvision", "device", "threads"):
        assert f"\n{label} " in out
    assert "build" in out.split("PyTorch", 1)[1].splitlines()[0]  # CPU-only or CUDA build


def test_an_empty_folder_says_where_to_put_mnist(tmp_path, capsys):
    status, out = check(capsys, "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"))
    assert status == 1
    assert out.count(" missing\n") == 4
    raw = tmp_path / "MNIST" / "raw"
    assert f"the four MNIST files are not in {raw}/" in out
    assert f"python 02_load_mnist.py --data-dir {tmp_path}" in out  # the fix, with the learner's own flag
    assert "All set" not in out


def test_one_missing_file_is_named(data_copy, capsys):
    (data_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte").unlink()
    status, out = check(capsys, "--data-dir", str(data_copy))
    assert status == 1 and "MNIST: train-labels-idx1-ubyte is not in" in out


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100_000])


def _compress(path):
    path.write_bytes(gzip.compress(path.read_bytes()))


def _web_page(path):
    path.write_text("<html><body>503 Service Unavailable</body></html>")


@pytest.mark.parametrize("damage, expected", [
    (_truncate, ("t10k-images-idx3-ubyte is damaged: 100,000 bytes", f"promises {N_TEST} images, which take 156,816 "
                 "bytes: it is cut off", "Delete it")),
    (_compress, ("still gzip-compressed", "Decompress it")),
    (_web_page, ("not an MNIST images header", "an intact one is 7,840,016 bytes", "Delete it")),
], ids=["truncated", "still compressed", "a web page"])
def test_a_damaged_file_is_named_with_its_size_and_the_fix(data_copy, damage, expected, capsys):
    damage(data_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte")
    status, out = check(capsys, "--data-dir", str(data_copy))
    assert status == 1
    for part in expected:
        assert part in out
    assert out.count("bytes, ok") == 3  # the three intact files are still reported as such


def test_an_out_dir_that_is_a_file_fails(tiny_mnist, tmp_path, capsys):
    (tmp_path / "results.txt").write_text("not a folder")
    status, out = check(capsys, "--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "results.txt"))
    assert status == 1 and "names a file" in out
    status, out = check(capsys, "--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path / "results.txt" / "sub"))
    assert status == 1 and "cannot be created" in out


def test_the_speed_check_times_03s_network(tiny_mnist, tmp_path, capsys):
    status, out = check(capsys, "--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), speed_seconds="0.05")
    assert status == 0
    speed = next(line for line in out.splitlines() if line.startswith("speed"))
    steps = float(speed.split()[1].replace(",", ""))
    assert steps > 0 and f"training steps a second of 03's network at batch {load_script('03_train_mnist').BATCH_SIZE}" in speed
    fused = dl_utils.fused_adam_works(torch.device("cpu"))
    assert f"on cpu, {'fused' if fused else 'for-loop'} Adam" in speed
    assert "s of maths per epoch of 03" in speed


def test_the_speed_checks_network_mirrors_03s_specification():
    """setup_check builds 03's network itself (it may not load a lesson): the same layers, lr and batch as 03."""
    train = load_script("03_train_mnist")
    assert setup_check.SPEED_BATCH == train.BATCH_SIZE == dl_utils.BATCH_SIZE == 64
    assert setup_check.SPEED_LR == train.LR == 1e-3 and setup_check.SPEED_HIDDEN == train.HIDDEN == 128
    assert getattr(train, "FUSED", False) is True  # 03 asks for fused Adam where it works; so does the check
    ours, theirs = setup_check.network_of_03(), train.SimpleNN(hidden=train.HIDDEN)
    shapes = [tuple(p.shape) for p in ours.parameters()]
    assert shapes == [tuple(p.shape) for p in theirs.parameters()] == [(128, 784), (128,), (10, 128), (10,)]
    assert dl_utils.count_parameters(ours) == dl_utils.count_parameters(theirs) == 101_770
    theirs.load_state_dict(dict(zip(theirs.state_dict(), ours.state_dict().values())))  # same weights, same maths
    images = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(ours(images), theirs.eval()(images))


def test_setup_check_imports_neither_dl_utils_nor_a_lesson():
    """course/ never imports dl_utils (no circle) and nothing shipped loads a lesson; every import at the top."""
    tree = ast.parse((REPO / "course" / "setup_check.py").read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    every = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert every == top_level, "an import inside a function"
    modules = {alias.name for node in every if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in every if isinstance(node, ast.ImportFrom)}
    assert "dl_utils" not in modules and not any(m.startswith(("importlib", "runpy")) for m in modules), modules
    assert modules & {"course.cli"}
    source = ast.unparse(tree)
    for loader in ("import_script", "run_path", "import_module", "spec_from_file_location", "exec_module"):
        assert loader not in source, loader


def test_python_dl_utils_py_runs_the_check_without_a_traceback(tmp_path):
    """The real command, in a real process: exit 1 with the fix, no traceback."""
    done = subprocess.run([sys.executable, str(REPO / "dl_utils.py"), "--data-dir", str(tmp_path), *NO_SPEED],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "to fix before the lessons can run" in done.stdout and "02_load_mnist.py" in done.stdout
