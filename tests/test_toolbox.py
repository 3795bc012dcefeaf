"""The toolbox's promises: every lesson stands alone and the toolbox's copies are the lessons' own code;
no import circle; settings become flags and are recorded without extra edits; and the edges (Ctrl-C, a bad
--out-dir, a damaged MNIST file, a crash in the learner's code) end with one paragraph."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

import dl_utils
from conftest import REPO, load_script
from course.cli import _comments


# ---------------------------------------------------------------------------
# The second edition's guarantees: every lesson stands alone, the toolbox's copies are the lessons' own
# ---------------------------------------------------------------------------
LESSONS = sorted(REPO.glob("0[1-9]_*.py"))
SHIPPED = [*LESSONS, REPO / "dl_utils.py", *sorted(REPO.glob("course/*.py")), *sorted(REPO.glob("extras/*.py"))]
EXERCISES = sorted(REPO.glob("exercises/**/*.py"))  # the checker loads the learner's own exercise files, no lesson
LOADS_A_MODULE = __import__("re").compile(
    r"\b(import_script|spec_from_file_location|run_path|import_module|__import__|exec_module)\s*\(")


def loads_a_module(source: str) -> list[int]:
    """Line numbers of source that load a module by path or by name (the way one lesson loaded another)."""
    return [n for n, line in enumerate(source.splitlines(), 1)
            if LOADS_A_MODULE.search(line) and not line.lstrip().startswith("#")]


def test_nothing_the_course_ships_loads_a_module_by_path():
    found = [f"{path.relative_to(REPO)}:{n}" for path in SHIPPED for n in loads_a_module(path.read_text(encoding="utf-8"))]
    assert found == [], "a lesson imports dl_utils and libraries, never another lesson"
    lesson_names = __import__("re").compile(r"0[1-9]_[a-z_]+")
    found = [f"{path.relative_to(REPO)}:{n}" for path in EXERCISES
             for n in loads_a_module(path.read_text(encoding="utf-8"))
             if lesson_names.search(path.read_text(encoding="utf-8").splitlines()[n - 1])]
    assert found == [], "the exercise checker loads the learner's files, never a lesson"


def test_the_module_loading_check_can_fail():
    assert loads_a_module("x = 1\nlesson = importlib.util.spec_from_file_location('l', '03_train_mnist.py')") == [2]
    assert loads_a_module("runpy.run_path('06_cnn_mnist.py')") == [1]
    assert loads_a_module("# importlib.import_module(name) in a comment is fine") == []


def imports_of(path) -> list[tuple[str, bool]]:
    """(module, at the top of the file?) for every import statement of a Python file."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if __name__ == "__main__":` and `try: import ...` are at the top level too
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            top |= {id(inner) for inner in node.body}
        if isinstance(node, ast.Try):
            top |= {id(inner) for inner in node.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found += [(node.module, id(node) in top)]
    return found


def test_every_lesson_imports_only_the_toolbox_extras_and_libraries():
    local = {p.stem for p in REPO.glob("*.py")} | {"course", "extras", "exercises", "benchmarks", "tests"}
    wrong = {path.name: sorted({m for m, _ in imports_of(path) if m.split(".")[0] in local} - {"dl_utils"}
                               - {m for m, _ in imports_of(path) if m.startswith("extras")})
             for path in LESSONS}
    assert {k: v for k, v in wrong.items() if v} == {}


def import_graph() -> dict[str, set[str]]:
    """{module: the course modules it imports} for dl_utils, course/* and extras/*."""
    files = {"dl_utils": REPO / "dl_utils.py"}
    files |= {f"course.{p.stem}": p for p in REPO.glob("course/*.py") if p.stem != "__init__"}
    files |= {f"extras.{p.stem}": p for p in REPO.glob("extras/*.py") if p.stem != "__init__"}
    return {name: {m for m, _ in imports_of(path) if m in files} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle in graph, as a list of modules, or [] when there is none."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_toolbox_and_course_form_no_import_circle():
    graph = import_graph()
    assert find_cycle(graph) == []
    assert [m for m, deps in graph.items() if m.startswith("course.") and "dl_utils" in deps] == []


def test_the_circle_check_can_fail():
    assert find_cycle({"dl_utils": {"course.cli"}, "course.cli": {"course.records"}, "course.records": {"dl_utils"}})
    assert find_cycle({"dl_utils": {"course.cli"}, "course.cli": set()}) == []


def test_course_imports_everything_at_the_top_of_its_files():
    late = [f"{p.relative_to(REPO)}: {m}" for p in REPO.glob("course/*.py") for m, at_top in imports_of(p) if not at_top]
    # dl_utils too, but for torchvision: imported only when MNIST must be downloaded (it takes about a second)
    late += [f"dl_utils.py: {m}" for m, at_top in imports_of(REPO / "dl_utils.py") if not at_top and m != "torchvision"]
    assert late == []


def test_sizes_of_the_second_edition():
    import ast

    lines = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in LESSONS}
    assert len(lines) == 7
    assert {name: n for name, n in lines.items() if n > 500} == {}
    assert sum(lines.values()) <= 3000, lines
    assert len((REPO / "dl_utils.py").read_text(encoding="utf-8").splitlines()) <= 700
    long_mains = {}
    for path in LESSONS:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" and node.end_lineno - node.lineno + 1 > 60:
                long_mains[path.name] = node.end_lineno - node.lineno + 1
    assert long_mains == {}


def code_of(path, name: str, *, drop_prefix: str = "dl_utils.") -> str:
    """The code of function or class `name` in a file, without comments and docstrings, `dl_utils.` dropped."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            for inner in ast.walk(node):  # docstrings are the learner's, and may differ
                body = getattr(inner, "body", None)
                if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                        and isinstance(getattr(body[0], "value", None), ast.Constant) \
                        and isinstance(body[0].value.value, str):
                    inner.body = body[1:] or [ast.Pass()]
            return ast.unparse(node).replace(drop_prefix, "")
    raise AssertionError(f"{path.name} defines no {name}")


def toolbox_fit_as_written_in_03() -> str:
    """dl_utils.fit with its one addition (the `train_epoch` argument, for 06) taken back out."""
    code = code_of(REPO / "dl_utils.py", "fit")
    return code.replace(", train_epoch=train_one_epoch", "").replace("train_epoch(", "train_one_epoch(")


@pytest.mark.parametrize("lesson, name", [("03_train_mnist", "SimpleNN"), ("03_train_mnist", "train_one_epoch"),
                                          ("03_train_mnist", "evaluate"), ("04_load_model", "SimpleNN"),
                                          ("06_cnn_mnist", "CNN"), ("06_cnn_mnist", "fgsm_attack")])
def test_the_toolbox_copy_is_the_lessons_own_code(lesson, name):
    assert code_of(REPO / f"{lesson}.py", name) == code_of(REPO / "dl_utils.py", name)


def test_the_toolbox_fit_is_03s_plus_one_argument():
    assert code_of(REPO / "03_train_mnist.py", "fit") == toolbox_fit_as_written_in_03()


def test_the_copy_check_can_fail(tmp_path):
    changed = (REPO / "03_train_mnist.py").read_text(encoding="utf-8").replace(
        "optimizer.zero_grad()  # 1.", "pass  # 1. (forgotten)")
    (tmp_path / "03_train_mnist.py").write_text(changed, encoding="utf-8")
    assert code_of(tmp_path / "03_train_mnist.py", "train_one_epoch") != code_of(REPO / "dl_utils.py", "train_one_epoch")
    # comments and docstrings may differ: only the code counts
    commented = (REPO / "03_train_mnist.py").read_text(encoding="utf-8").replace(
        "model.train()  #", "model.train()  # a new comment;")
    (tmp_path / "03_train_mnist.py").write_text(commented, encoding="utf-8")
    assert code_of(tmp_path / "03_train_mnist.py", "train_one_epoch") == code_of(REPO / "dl_utils.py", "train_one_epoch")


def test_03_meets_its_loop_in_the_first_half():
    source = (REPO / "03_train_mnist.py").read_text(encoding="utf-8").splitlines()
    loop = next(n for n, line in enumerate(source, 1) if line.startswith("def train_one_epoch("))
    epochs = next(n for n, line in enumerate(source, 1) if line.startswith("def fit("))
    assert loop < len(source) / 2 and epochs < len(source) / 2


def test_03s_loop_and_the_toolbox_loop_train_to_the_same_weights(tiny_mnist, capsys):
    train = load_script("03_train_mnist")
    weights = []
    for fit in (train.fit, dl_utils.fit):
        torch.manual_seed(0)
        model = train.SimpleNN(hidden=16, dropout=0.2)  # dropout: the random masks must line up too
        data = dl_utils.load_mnist_data(tiny_mnist, batch_size=32, seed=1)
        fit(model, data.train_loader, data.val_loader, nn.CrossEntropyLoss(),
            torch.optim.Adam(model.parameters(), lr=1e-3), epochs=2, patience=1)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_setting_has_its_reason_and_becomes_a_flag():
    """Each lesson's UPPERCASE settings carry a comment (the --help text) and are flags of that lesson."""
    import re

    missing = []
    for path in LESSONS:
        module = load_script(path.stem)
        settings = getattr(module, "SETTINGS", None) or dl_utils.collect_settings(vars(module))
        comments = _comments(path)
        missing += [f"{path.name}: {name} has no comment" for name in settings if not comments.get(name)]
        source = path.read_text(encoding="utf-8")
        missing += [f"{path.name}: {name} is not turned into flags" for name in settings
                    if "collect_settings(globals())" not in source]
        assert not re.search(r"add_argument\(\s*\"--(lr|epochs|batch-size|seed)\"", source), path.name
    assert missing == []


def test_a_new_03_setting_is_a_flag_and_recorded_everywhere_with_no_other_edit(tiny_mnist, tmp_path, monkeypatch):
    train = load_script("03_train_mnist")
    monkeypatch.setattr(train, "MY_NEW_SETTING", 0.25, raising=False)
    train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick", "--my-new-setting", "0.5"])
    checkpoint = dl_utils.load_checkpoint(tmp_path / "mnist_model.pth")
    assert checkpoint["hyperparameters"]["my_new_setting"] == 0.5
    assert json.loads((tmp_path / "03_train_mnist.json").read_text())["hyperparameters"]["my_new_setting"] == 0.5
    header = (tmp_path / "experiments.csv").read_text().splitlines()[0].split(",")
    assert "my_new_setting" in header
    assert "out_dir" not in checkpoint["hyperparameters"]  # paths are not settings


def test_results_record_the_machine(tiny_mnist, tmp_path):
    train = load_script("03_train_mnist")
    results = train.main(["--data-dir", str(tiny_mnist), "--out-dir", str(tmp_path), "--quick"])
    assert results["cpu"] and results["cpu"] != "unknown"
    assert results["torch_version"] == torch.__version__
    assert results["threads"] == torch.get_num_threads()


def test_out_dir_that_is_a_file_fails_before_reading_any_data(tmp_path, capsys):
    train = load_script("03_train_mnist")
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(dl_utils.CourseError) as error:  # the data dir does not exist either:
        train.main(["--data-dir", str(tmp_path / "nowhere"), "--out-dir", str(not_a_folder)])
    assert "is a file, not a folder" in str(error.value)  # ... the out-dir is checked first
    assert not_a_folder.read_text() == "mine"


def test_a_damaged_mnist_file_is_named_with_its_size(tiny_mnist, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_mnist, root)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    full = images.stat().st_size
    images.write_bytes(images.read_bytes()[:-1000])  # a download cut off
    with pytest.raises(dl_utils.CourseError) as error:
        dl_utils.load_mnist_data(root, download=False)
    message = str(error.value)
    assert str(images) in message and f"{full - 1000:,} bytes" in message and f"{full:,}" in message
    assert "delete that file" in message


def test_read_idx_matches_what_was_written(tiny_mnist):
    from conftest import N_TRAIN, synthetic_digits

    images = dl_utils.read_idx(tiny_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte")
    labels = dl_utils.read_idx(tiny_mnist / "MNIST" / "raw" / "train-labels-idx1-ubyte")
    expected_images, expected_labels = synthetic_digits(N_TRAIN, seed=1)
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.equal(images, torch.from_numpy(expected_images))
    assert torch.equal(labels, torch.from_numpy(expected_labels).long())


def test_subset_larger_than_the_training_split_says_so(tiny_mnist, capsys):
    data = dl_utils.load_mnist_data(tiny_mnist, subset=10**6)
    assert "using all of them" in capsys.readouterr().out
    assert len(data.train_loader.dataset) == 550  # 600 - 600/12 for validation


def test_shuffled_pixels_are_one_fixed_permutation(tiny_mnist):
    natural = dl_utils.load_mnist_data(tiny_mnist)
    shuffled = dl_utils.load_mnist_data(tiny_mnist, pixels="shuffled")
    a, b = natural.test_loader.images.flatten(1), shuffled.test_loader.images.flatten(1)
    assert not torch.equal(a, b)
    # the same permutation for every image: find it from image 0's pixel order, check all
    order = dl_utils.shuffle_pixels(torch.arange(784).reshape(1, 28, 28)).flatten()
    assert torch.equal(a[:, order], b)
    assert sorted(order.tolist()) == list(range(784))


def test_a_crash_in_learner_code_is_one_paragraph(capsys, monkeypatch):
    monkeypatch.delenv("DL_TRACEBACK", raising=False)

    def main():
        images = torch.zeros(4, 784)
        return nn.Linear(28, 10)(images)  # a shape mistake, as a learner might make

    with pytest.raises(SystemExit) as exit_info:
        dl_utils.run(main)
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "RuntimeError" in message and "test_toolbox.py line" in message and "nn.Linear(28, 10)" in message
    assert "Traceback" not in message


def test_ctrl_c_mid_training_exits_130_and_keeps_the_old_checkpoint(tiny_mnist, tmp_path):
    previous = tmp_path / "mnist_model.pth"
    previous.write_bytes(b"the checkpoint of the last finished run")
    # A shell started in the background (`... &`) makes its children ignore Ctrl-C, and Python then never
    # raises KeyboardInterrupt: give the child the default handling back, as a terminal would.
    process = subprocess.Popen(
        [sys.executable, str(REPO / "03_train_mnist.py"), "--data-dir", str(tiny_mnist), "--out-dir",
         str(tmp_path), "--epochs", "100000", "--hidden", "512"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in process.stdout:  # wait until training is under way
            if line.startswith("Epoch 2/"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:  # never leave a 100,000-epoch run behind, whatever failed above
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Interrupted" in err and "Nothing of this run was saved" in err
    assert previous.read_bytes() == b"the checkpoint of the last finished run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist_model.pth"]  # no temp files


# ---------------------------------------------------------------------------
# Newcomer paths: what the project ships works on a learner's machine
# ---------------------------------------------------------------------------
# Written in pieces, so that this file (which ships too) does not itself name a path of this machine.
MACHINE_PATH = __import__("re").compile("|".join([r"\.\./" + "shared", "/" + "work/", "/" + "root/", r"/home/\w",
                                                  r"/Users/\w", r"/tmp/[\w.-]+/", r"[A-Z]:\\\\Users"]))


def tracked_files():
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        return [REPO / name for name in names.splitlines() if (REPO / name).is_file()]
    except (OSError, subprocess.CalledProcessError):  # no git: every file but the local ones
        skip = {".git", ".venv", "outputs", "data", "__pycache__"}
        return [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]


def test_no_shipped_file_names_a_path_of_this_machine():
    found = []
    for path in tracked_files():
        if path.suffix in (".png", ".pth"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert found == [], "say --data-dir DATA_DIR (or /path/to/folder) instead:\n" + "\n".join(found)


def test_the_machine_path_check_can_fail():
    assert MACHINE_PATH.search("python 03_train_mnist.py --data-dir ../" + "shared/" + "data")
    assert MACHINE_PATH.search("Looking in /" + "work/" + "shared/" + "data/MNIST/raw")
    assert not MACHINE_PATH.search("python 03_train_mnist.py --data-dir DATA_DIR --out-dir outputs/cnn")


def header_commands():
    """(file, line, script, args) for every `python X.py ...` line in a script's opening docstring."""
    import ast

    from test_docs import python_commands

    commands = []
    for path in sorted([*REPO.glob("0*.py"), *REPO.glob("benchmarks/*.py"), *REPO.glob("exercises/*.py")]):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        joined = docstring.replace("\\\n", " ")
        for number, line in enumerate(joined.splitlines(), 1):
            commands += [(path.name, number, script, args) for script, args in python_commands(line)]
    return commands


def test_every_command_in_a_script_header_uses_real_flags():
    from test_docs import check_command

    commands = header_commands()
    assert len(commands) > 20  # every lesson shows several
    problems = []
    for name, number, script, args in commands:
        if not (REPO / script).is_file():
            problems.append(f"{name} header line {number}: {script} does not exist")
            continue
        problems += [f"{name} header line {number}: {p}" for p in check_command(script, args)]
    assert problems == []


def test_files_named_in_header_commands_are_written_by_some_script():
    import re

    sources = "\n".join(p.read_text(encoding="utf-8") for p in
                        [*REPO.glob("*.py"), *REPO.glob("course/*.py"), *REPO.glob("exercises/*.py")])
    missing = []
    for name, number, script, args in header_commands():
        for arg in args:
            match = re.fullmatch(r"outputs/(?:[\w-]+/)*([\w-]+\.(?:pth|png|json|csv))", arg)
            if match and f'"{match.group(1)}"' not in sources and f"'{match.group(1)}'" not in sources:
                missing.append(f"{name} header line {number}: nothing writes {arg}")
    assert missing == []


EXACT_FIGURE = __import__("re").compile(r"\b\d+\.\d\d%|\b\d+\.\d+ ?s\b|\b\d+\.\d+ ms\b")


def prose_lines(path):
    """(line number, text) of the comments and docstrings of a Python file: what a learner reads."""
    import io
    import tokenize

    lines = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type == tokenize.COMMENT:
            lines.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and token.string.startswith(('"""', "'''", 'r"""')):
            lines += [(token.start[0] + i, text) for i, text in enumerate(token.string.splitlines())]
    return lines


def test_figures_in_script_comments_are_rounded_and_sourced():
    """An exact figure in a comment goes stale the day a script changes, and another machine gives
    another: scripts say "about 16 s" / "about 68%" and point to README "Results", where the docs test
    checks each exact figure against docs/results."""
    files = [*REPO.glob("0*.py"), REPO / "dl_utils.py", *REPO.glob("course/*.py")]
    found = []
    for path in files:
        for number, text in prose_lines(path):
            if "e.g." in text or text.lstrip().startswith(("`Epoch", "Epoch ")):
                continue  # an example of a printed line, not a claim
            if EXACT_FIGURE.search(text):
                found.append(f"{path.name}:{number}: {text.strip()[:110]}")
    assert found == [], "round these and point to README 'Results':\n" + "\n".join(found)


def test_the_figure_check_can_fail():
    assert EXACT_FIGURE.search("# measured: 0.05 reaches only 68.10%")
    assert EXACT_FIGURE.search("How long: 16.1 s for the whole script")
    assert not EXACT_FIGURE.search("How long: about 16 s (README.md 'Results')")


# ---------------------------------------------------------------------------
# dl_utils's module map is true
# ---------------------------------------------------------------------------
def lesson_users(name: str) -> set[str]:
    """The lessons (two-digit numbers) whose CODE calls dl_utils.<name> (comments and docstrings don't count)."""
    import io
    import re
    import tokenize

    def code(path):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT
                        and not (t.type == tokenize.STRING and t.string.startswith(('"""', "'''"))))

    if not _LESSON_CODE:  # read once: every name asks. The extras/ files a lesson imports count as its code.
        for path in sorted(REPO.glob("0[0-9]_*.py")):
            names = re.findall(r"^from extras import ([\w, ]+)", path.read_text(encoding="utf-8"), re.M)
            extras = [REPO / "extras" / f"{name.strip()}.py" for line in names for name in line.split(",")]
            _LESSON_CODE[path.name[:2]] = " ".join(code(p) for p in [path, *extras] if p.is_file())
    return {lesson for lesson, code in _LESSON_CODE.items() if re.search(rf"dl_utils\s*\.\s*{name}\b", code)}


_LESSON_CODE: dict[str, str] = {}  # {"03": 03_train_mnist.py without comments and docstrings, ...}


def module_map() -> dict[str, set[str]]:
    """{name: lessons} from the map in dl_utils's docstring: lines `    area    name [03 05], name, ...`."""
    import re

    text = dl_utils.__doc__
    block = text[text.index("What lives here"):text.index("\n\n", text.index("    "))]
    entries = {}
    for line in block.splitlines()[1:]:
        body = re.sub(r"^\s{4}\S.{0,11}?\s{2,}", "", line) if re.match(r"^ {4}\S", line) else line
        for name, tags in re.findall(r"\b([A-Za-z_]\w*)(?: \[([\d ]+)\])?(?:,|$)", body.strip()):
            entries[name] = set(tags.split()) if tags else set()
    return entries


def public_names() -> set[str]:
    import ast

    tree = ast.parse((REPO / "dl_utils.py").read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")}
    for node in tree.body:  # what dl_utils passes on from course/
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course"):
            names |= {alias.name for alias in node.names}
    return names


def test_dl_utils_module_map_names_everything_with_the_lessons_that_use_it():
    entries = module_map()
    assert len(entries) > 40
    assert sorted(public_names() - set(entries)) == [], "in dl_utils but not in its map"
    assert sorted(n for n in entries if not hasattr(dl_utils, n)) == [], "in the map but not in dl_utils"
    wrong = {name: (sorted(tags), sorted(lesson_users(name))) for name, tags in entries.items()
             if tags != lesson_users(name)}
    assert wrong == {}, "map tags (left) against the lessons whose code calls dl_utils.NAME (right)"


# ---------------------------------------------------------------------------
# benchmarks/bench_training.py: the verdicts of its table, and no machine path in what it records
# ---------------------------------------------------------------------------
def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_training", REPO / "benchmarks" / "bench_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_results(*, standard_s=200.0, course_s=25.0, standard_train=180.0, course_train=20.0,
                   plain_train=120.0, cnn_train=50.0, cnn_accuracies=(0.992, 0.9921, 0.992)):
    process = {"standard": {"wall_s_median": standard_s, "train_s_median": standard_train, "test_accuracy": [0.9774],
                            "peak_rss_bytes_max": 9e8},
               "dl_utils": {"wall_s_median": course_s, "train_s_median": course_train, "test_accuracy": [0.9767],
                            "peak_rss_bytes_max": 1e9},
               "speedup": standard_s / course_s, "loop_speedup": standard_train / course_train}
    mean = sum(cnn_accuracies) / len(cnn_accuracies)
    cnn = {"plain": {"epochs": 3, "train_seconds": plain_train, "test_accuracy": 0.9893},
           "defaults": {"command": "python 06_cnn_mnist.py", "epochs": 2, "seeds": [0, 1, 2], "train_seconds": cnn_train,
                        "test_accuracy_mean": mean, "test_accuracy_min": min(cnn_accuracies),
                        "test_accuracy_max": max(cnn_accuracies)},
           "time_ratio": cnn_train / plain_train}
    return {"process": process, "cnn": cnn}


def test_bench_training_says_yes_only_when_a_target_holds():
    bench = _bench()
    met = [row[4] for row in bench.targets(_bench_results()).values()]
    assert met == [True] * len(met) and len(met) == 6
    misses = {"whole process": dict(course_s=200.0 / 5.9), "training loop": dict(course_train=180.0 / 7.9),
              "CNN training": dict(cnn_train=0.46 * 120.0), "CNN test accuracy": dict(cnn_accuracies=(0.9919,) * 3)}
    for what, change in misses.items():
        rows = bench.targets(_bench_results(**change))
        failed = [name for name, row in rows.items() if row[4] is False]
        assert len(failed) == 1 and (what in failed[0] or what.split()[0] in failed[0]), (what, failed)


def test_bench_training_records_commands_without_this_machines_paths(tmp_path):
    bench = _bench()
    command = [sys.executable, str(REPO / "03_train_mnist.py"), "--out-dir", str(tmp_path / "out")]
    assert bench.shown_command(command, tmp_path) == "python 03_train_mnist.py --out-dir TMP/out"
