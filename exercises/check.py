"""Check your exercises: python exercises/check.py

Like rustlings: it checks the exercises in course order (01 to 06), shows the
first one you have not solved yet (its task, and what was expected against
what your function returned), and ends with `Progress: N/M exercises done`.

    python exercises/check.py               # every lesson, in course order
    python exercises/check.py 03            # lesson 03 only (or: 01 04, or an exercise's name)
    python exercises/check.py --hint        # also a hint for the first unsolved exercise
    python exercises/check.py --solutions   # check the reference solutions instead of your files
    python exercises/check.py --reset 03    # put lesson 03's untouched exercises back (asks; keeps a backup)
    python exercises/check.py --challenge mlp --data-dir DATA_DIR   # a challenge on the real MNIST

Your files are the record of your progress: the checker only reads them. It
runs each exercise in a separate worker process with a time limit, so an
endless loop or a crash in one exercise is reported (with its line) and the
others are still checked. It needs no MNIST and no internet, except for
--challenge. Exit status 0 exactly when every selected exercise passes.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import io
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOLUTIONS = HERE / "solutions"

# Lesson number -> its exercise file, in course order.
LESSONS = {
    "01": "ex01_tensors.py",
    "02": "ex02_data.py",
    "03": "ex03_training.py",
    "04": "ex04_load_model.py",
    "05": "ex05_experiments.py",
    "06": "ex06_cnn.py",
}
TIME_LIMIT = 10.0  # seconds per exercise: the slowest check takes well under 1 s; an endless loop is cut off
START_LIMIT = 120.0  # seconds for a worker to start (importing torch takes a few on a busy laptop)
WIDTH = 78  # the width of the printed report
PROTOCOL = "@@check@@ "  # prefix of the worker's answers on its stdout: anything else is ignored

# The challenges (exercises/challenges.py): function, target, epoch limit, what it asks.
CHALLENGES = {
    "mlp": {"function": "mlp_challenge", "target": 0.98, "strict": True, "max_epochs": 10, "fully_connected": True,
            "task": "above 98% test accuracy with a fully connected network (no convolutions), in at most "
                    "10 epochs"},
    "cnn": {"function": "cnn_challenge", "target": 0.99, "strict": False, "max_epochs": 2, "fully_connected": False,
            "task": "at least 99% test accuracy with a convolutional network in at most 2 epochs"},
}
SETTINGS = {"epochs": int, "batch_size": int, "lr": float, "optimizer": str, "momentum": float,
            "scheduler": str, "weight_decay": float}
SETTING_DEFAULTS = {"optimizer": "adam", "momentum": 0.0, "scheduler": "constant", "weight_decay": 0.0}


class CheckerError(SystemExit):
    """A problem the learner can fix, said in one paragraph; exits with status 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(textwrap.fill(message, WIDTH))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python exercises/check.py",
        description="Check the course's exercises (exercises/ex01_*.py ... ex06_*.py), in course order.",
        epilog="Your files are only read, never changed (except by --reset, which asks first and keeps a backup).")
    parser.add_argument("select", nargs="*", metavar="LESSON",
                        help="lessons to check, e.g. 03 or 1 4, or an exercise's name (default: all)")
    parser.add_argument("--hint", action="store_true", help="show the hint for the first unsolved exercise")
    parser.add_argument("--solutions", action="store_true",
                        help="check the reference solutions in exercises/solutions/ instead of your files")
    parser.add_argument("--dir", default=None, metavar="FOLDER",
                        help="check (or --reset) the exercise files in FOLDER instead of exercises/")
    parser.add_argument("--reset", metavar="LESSON", default=None,
                        help="restore a lesson's untouched exercise file (asks first; your file is kept as a backup)")
    parser.add_argument("--yes", action="store_true", help="with --reset: do not ask")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="SECONDS",
                        help="time limit per exercise (default: %(default)s)")
    parser.add_argument("--challenge", choices=list(CHALLENGES), default=None,
                        help="train your exercises/challenges.py model on the real MNIST and say pass or fail")
    parser.add_argument("--data-dir", default=None, help="with --challenge: the folder holding MNIST/raw/")
    parser.add_argument("--out-dir", default=None,
                        help="with --challenge: where its results JSON goes (default: outputs/ beside the scripts)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="with --challenge: train with this many seeds, 0, 1, ... (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="with --challenge: where to train (default: %(default)s)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run checks for the parent
    return parser


# ---------------------------------------------------------------------------
# Reading the exercise files (no torch needed): tasks, comments, stubs
# ---------------------------------------------------------------------------
def functions(path: Path) -> dict[str, ast.FunctionDef]:
    """The top-level functions of a file, by name ({} if it does not parse)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, OSError):
        return {}
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def practises(path: Path, name: str) -> str:
    """The comment line just above `def name` ("03_train_mnist.py section 2 ... · "Forward ..." in ...")."""
    node = functions(path).get(name)
    if node is None:
        return ""
    lines = path.read_text(encoding="utf-8").splitlines()
    above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
    return above.lstrip("# ").replace("\u00b7", "-") if above.startswith("#") else ""


def make_stub(solution_text: str) -> str:
    """The untouched exercise file for a solution file: every function body becomes `raise NotImplementedError`.

    The module docstring, the imports, each function's signature, docstring and
    the comment above it stay; the "# Reference solutions" line goes.
    """
    tree = ast.parse(solution_text)
    lines = solution_text.splitlines()
    for node in reversed([n for n in tree.body if isinstance(n, ast.FunctionDef)]):
        body_start = node.body[0].end_lineno if ast.get_docstring(node) is not None else node.lineno
        indent = " " * (node.col_offset + 4)
        lines[body_start:node.end_lineno] = [f"{indent}raise NotImplementedError  # replace this line with your code"]
    text = "\n".join(lines) + "\n"
    return re.sub(r"\n# Reference solutions[^\n]*\n\n?", "\n", text)


# ---------------------------------------------------------------------------
# The worker: a separate process that imports torch once and runs the checks
# ---------------------------------------------------------------------------
def learner_frame(tb, path: str):
    """(line number, source line) of the innermost traceback frame in the learner's file, or (None, None)."""
    found = (None, None)
    for frame in traceback.extract_tb(tb):
        if os.path.abspath(frame.filename) == path:
            found = (frame.lineno, (frame.line or "").strip())
    return found


class ExerciseTimeout(BaseException):
    """Raised inside the learner's code when it runs past the time limit (a BaseException: `except Exception` in
    the learner's code cannot swallow it)."""


class Watchdog:
    """Stops the worker's main thread after `limit` seconds by raising ExerciseTimeout in it.

    That ends an endless Python loop and keeps its traceback (so the report can
    name the line). A long call inside C code cannot be interrupted this way; for
    that, faulthandler writes every thread's stack to the hang file and exits the
    process 5 s later, and the parent starts a new worker.
    """

    def __init__(self, limit: float):
        import ctypes

        self.set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
        self.thread_id = ctypes.c_ulong(threading.main_thread().ident)
        self.lock, self.running = threading.Lock(), True
        self.timer = threading.Timer(limit, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        import ctypes

        with self.lock:
            if self.running:
                self.set_async(self.thread_id, ctypes.py_object(ExerciseTimeout))

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        with self.lock:
            self.running = False
            self.set_async(self.thread_id, None)  # clear one that is pending but not raised yet


def worker_main(hang_file: str) -> None:
    """Answer the parent's requests, one JSON line each, until stdin closes."""
    import faulthandler

    protocol = sys.stdout
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and fair to a busy CPU
    # The first optimizer ever built imports torch._dynamo (seconds): do it now, outside any exercise's time limit.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    import checks

    hang = open(hang_file, "w")
    modules = {}
    requests, sys.stdin = sys.stdin, io.StringIO("")  # the learner's input() must not eat the parent's requests

    def answer(payload: dict) -> None:
        protocol.write(PROTOCOL + json.dumps(payload) + "\n")
        protocol.flush()

    answer({"ready": True, "exercises": [{"lesson": e.lesson, "name": e.name, "hint": e.hint}
                                         for e in checks.EXERCISES]})
    by_name = {(e.lesson, e.name): e for e in checks.EXERCISES}
    for line in requests:
        request = json.loads(line)
        path = os.path.abspath(request["path"])
        printed = io.StringIO()
        faulthandler.dump_traceback_later(request["time_limit"] + 5, exit=True, file=hang)
        try:
            try:
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                        Watchdog(request["time_limit"]):
                    reply = (load_module(path, modules) if request["op"] == "load"
                             else run_check(by_name[(request["lesson"], request["name"])], modules.get(path), path,
                                            checks.Fail))
            except ExerciseTimeout:  # it fired between the learner's code returning and the watchdog stopping
                reply = {"status": "pass"} if request["op"] == "check" else {"status": "ok"}
        finally:
            faulthandler.cancel_dump_traceback_later()
        torch.set_grad_enabled(True)  # in case the learner's code switched these off or changed them
        torch.set_default_dtype(torch.float32)
        reply["printed"] = printed.getvalue()[-1500:]
        answer(reply)


def load_module(path: str, modules: dict) -> dict:
    """Compile and run the learner's file; keep the module for the checks that follow."""
    import types

    try:
        source = Path(path).read_text(encoding="utf-8")
        code = compile(source, path, "exec")
    except SyntaxError as error:
        return {"status": "broken", "message": f"{type(error).__name__}: {error.msg}", "line": error.lineno,
                "code": (error.text or "").strip()}
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return {"status": "broken", "message": f"{type(error).__name__}: {error}", "line": None, "code": ""}
    module = types.ModuleType("learner_" + Path(path).stem)
    module.__file__ = path
    sys.modules[module.__name__] = module  # so that pickle (torch.save) finds the classes the learner defines
    try:
        exec(code, module.__dict__)
    except ExerciseTimeout as error:
        return {"status": "timeout", "line": learner_frame(error.__traceback__, path)[0]}
    except BaseException as error:  # anything at all, SystemExit included: report it, keep going
        line, text = learner_frame(error.__traceback__, path)
        return {"status": "broken", "message": f"{type(error).__name__}: {error}", "line": line, "code": text}
    modules[path] = module
    return {"status": "ok"}


def run_check(exercise, module, path: str, Fail) -> dict:
    """Run one exercise's check on the learner's function; pass, todo, fail or error."""
    fn = getattr(module, exercise.name, None)
    if not callable(fn):
        return {"status": "missing"}
    try:
        exercise.check(fn)
    except Fail as failure:
        cause = failure.__cause__ or failure.__context__
        line, text = learner_frame(cause.__traceback__, path) if cause is not None else (None, None)
        return {"status": "fail", "message": str(failure), "line": line, "code": text}
    except NotImplementedError as error:
        line, text = learner_frame(error.__traceback__, path)
        if line is not None and "NotImplementedError" in (text or ""):
            return {"status": "todo", "line": line}
        return {"status": "error", "message": f"NotImplementedError: {error}", "line": line, "code": text}
    except ExerciseTimeout as error:
        return {"status": "timeout", "line": learner_frame(error.__traceback__, path)[0]}
    except BaseException as error:  # the learner's code crashed: say where
        line, text = learner_frame(error.__traceback__, path)
        message = f"{type(error).__name__}: {error}".strip()
        if isinstance(error, RuntimeError) and re.search(r"cannot be multiplied|must match the size|shape", str(error)):
            message += ("\n(A shape mismatch: print the shapes of the tensors on that line, e.g. "
                        "print(x.shape, weight.shape), and write down what each dimension means.)")
        return {"status": "error", "message": message, "line": line, "code": text}
    return {"status": "pass"}


class Worker:
    """The parent's handle on one worker process; restarted after an endless loop or a crash."""

    def __init__(self, time_limit: float):
        self.time_limit = time_limit
        self.process = None
        self.exercises = None

    def start(self) -> None:
        self.hang_path = Path(tempfile.mkstemp(prefix="check_hang_", suffix=".txt")[1])
        self.stderr = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "MPLBACKEND": "Agg"}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(self.hang_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, encoding="utf-8",
            env=env, cwd=str(REPO))
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True).start()
        ready = self._next(START_LIMIT)
        if ready is None or not ready.get("ready"):
            raise CheckerError("The checker's worker process could not start: " + self._stderr_tail())
        self.exercises = ready["exercises"]

    @staticmethod
    def _read(stream, lines) -> None:
        for line in stream:
            if line.startswith(PROTOCOL):
                lines.put(json.loads(line[len(PROTOCOL):]))
        lines.put(None)  # the worker exited

    def _next(self, timeout: float):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return "timeout"

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return " ".join(self.stderr.read()[-600:].split()) or "(no message)"

    def request(self, **payload) -> dict:
        if self.process is None:
            self.start()
        self.hang_path.write_text("")
        self.process.stdin.write(json.dumps({**payload, "time_limit": self.time_limit}) + "\n")
        self.process.stdin.flush()
        reply = self._next(self.time_limit + 20)  # the worker stops itself by time_limit + 5; this is a backstop
        if isinstance(reply, dict):
            return reply
        hang = self.hang_path.read_text(errors="replace")
        crashed = reply is None and not hang.strip()
        tail = self._stderr_tail() if crashed else ""
        self.stop()
        if crashed:  # it died without a time-out: e.g. os._exit, a segfault, out of memory
            return {"status": "error", "message": f"the Python process running it died ({tail})", "line": None,
                    "code": "", "printed": ""}
        line = None
        for match in re.finditer(r'File "([^"]+)", line (\d+)', hang):  # the innermost frame comes first
            if os.path.abspath(match.group(1)) == os.path.abspath(payload["path"]):
                line = int(match.group(2))
                break
        return {"status": "timeout", "line": line, "printed": ""}

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.kill()
                self.process.wait(timeout=10)
            with contextlib.suppress(Exception):
                self.hang_path.unlink()
            self.process = None


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------
def source_line(path: Path, line) -> str:
    try:
        return path.read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError, TypeError, UnicodeDecodeError):
        return ""


def where(path: Path, line, code: str | None = None) -> str:
    if not line:
        return ""
    code = code or source_line(path, line)
    return f" at {display(path)} line {line}" + (f": {code}" if code else "")


def display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO)).replace(os.sep, "/")
    return str(path)


def explain(result: dict, path: Path, time_limit: float) -> str:
    """What went wrong with one exercise, in plain words."""
    status, line = result["status"], result.get("line")
    if status == "todo":
        return (f"Not started yet: the function still raises NotImplementedError (line {line}). Replace that "
                "line with your code.")
    if status == "missing":
        return (f"There is no function called {result['name']} in {display(path)}: the checker looks each exercise "
                "up by its name. Did you rename or delete it? (--reset puts the untouched file back.)")
    if status == "broken":
        return (f"{display(path)} does not load, so none of its exercises can be checked: {result['message']}"
                + where(path, line, result.get("code")) + ".")
    if status == "timeout":
        return (f"Still running after {time_limit:g} s, so it was stopped: an endless loop?"
                + (where(path, line) + " (where it was when stopped)" if line else "")
                + ". A loop over a loader ends by itself; a `while` loop needs a condition that becomes false.")
    if status == "error":
        return "Your code raised " + result["message"] + where(path, line, result.get("code")) + "."
    text = result["message"]
    if line:
        text += "\n(The error came" + where(path, line, result.get("code")) + ".)"
    return text


def bar(done: int, total: int, width: int = 30) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def wrap(text: str, indent: str = "") -> str:
    return "\n".join(textwrap.fill(paragraph, WIDTH, initial_indent=indent, subsequent_indent=indent)
                     if paragraph.strip() else "" for paragraph in text.split("\n"))


def report_exercise(exercise: dict, result: dict, path: Path, solutions_path: Path, args) -> None:
    """The block about the first unsolved exercise: where, what it practises, the task, what went wrong."""
    node = functions(path).get(exercise["name"])
    solution = functions(solutions_path).get(exercise["name"])
    task = ast.get_docstring(solution) if solution else ""
    print("-" * WIDTH)
    print(f"Next: {exercise['name']} in {display(path)}" + (f" (line {node.lineno})" if node else ""))
    topic = practises(solutions_path, exercise["name"])
    if topic:
        print(wrap("Practises: " + topic))
    if task and result["status"] != "broken":
        print()
        print(textwrap.indent(task, "    "))
    print()
    print(wrap(explain({**result, "name": exercise["name"]}, path, args.time_limit)))
    if result.get("printed", "").strip():
        print("\nYour code printed:\n" + textwrap.indent(result["printed"].rstrip()[-800:], "    "))
    print()
    if args.hint:
        print(wrap("Hint: " + exercise["hint"]))
    else:
        print(wrap(f"Stuck? python exercises/check.py {exercise['lesson']} --hint"))
    if not args.solutions:
        again = f"python exercises/check.py {exercise['lesson']}" + (f" --dir {args.dir}" if args.dir else "")
        print(wrap(f"Edit {display(path)}, save, and run {again} again. "
                   f"The reference solution is in {display(solutions_path)}: try first without looking."))
    print("-" * WIDTH)


def selected_exercises(all_exercises: list[dict], select: list[str]) -> list[dict]:
    if not select:
        return all_exercises
    lessons, names = set(), set()
    known = {e["name"] for e in all_exercises}
    for item in select:
        item = item.strip().lower().removeprefix("ex").split("_")[0] if item not in known else item
        if item in known:
            names.add(item)
        elif item.isdigit() and f"{int(item):02d}" in LESSONS:
            lessons.add(f"{int(item):02d}")
        else:
            raise CheckerError(f"{item!r} is neither a lesson (01 to 06) nor an exercise. The exercises: "
                               + ", ".join(sorted(known)) + ".")
    return [e for e in all_exercises if e["lesson"] in lessons or e["name"] in names]


def exercise_folder(args) -> Path:
    """Where the files to check are: --dir, else exercises/solutions/ with --solutions, else exercises/."""
    if args.dir:
        folder = Path(args.dir).expanduser().resolve()
        if not folder.is_dir():
            raise CheckerError(f"--dir {args.dir}: there is no such folder.")
        return folder
    return SOLUTIONS if args.solutions else HERE


def check_exercises(args) -> int:
    folder = exercise_folder(args)
    # The exercises, in course order, from the solution files (the checks in checks.py have the same names).
    everything = [{"lesson": lesson, "name": name} for lesson, filename in LESSONS.items()
                  for name in functions(SOLUTIONS / filename)]
    chosen = selected_exercises(everything, args.select)  # a typo is reported before torch is imported
    worker = Worker(args.time_limit)
    worker.start()
    try:
        hints = {(e["lesson"], e["name"]): e["hint"] for e in worker.exercises}
        for exercise in chosen:
            exercise["hint"] = hints.get((exercise["lesson"], exercise["name"]), "(no hint)")
        print(f"Checking {'the reference solutions' if args.solutions else 'your exercises'} in "
              f"{display(folder)}/, in course order:\n")
        results, first = [], None
        for lesson, filename in LESSONS.items():
            exercises = [e for e in chosen if e["lesson"] == lesson]
            if not exercises:
                continue
            path = folder / filename
            if not path.is_file():
                loaded = {"status": "broken", "message": "the file is missing (--reset puts it back)", "line": None}
            else:
                loaded = worker.request(op="load", path=str(path))
                if loaded["status"] == "timeout":  # an endless loop at the top level of the file
                    loaded = {"status": "broken", "message": f"loading it took more than {args.time_limit:g} s: "
                              "an endless loop outside the functions?", "line": loaded.get("line")}
                elif loaded["status"] == "error":
                    loaded["status"] = "broken"
            lesson_results = []
            for exercise in exercises:
                if loaded["status"] == "broken":
                    result = dict(loaded)
                else:
                    result = worker.request(op="check", lesson=lesson, name=exercise["name"], path=str(path))
                    if worker.process is None:  # it was stopped (endless loop): reload the file for the next one
                        worker.start()
                        worker.request(op="load", path=str(path))
                lesson_results.append(result)
                if first is None and result["status"] != "pass":
                    first = (exercise, result, path)
            done = sum(r["status"] == "pass" for r in lesson_results)
            status = f"{done}/{len(exercises)} done"
            if loaded["status"] == "broken":
                status += ", the file does not load" + (f" (line {loaded['line']})" if loaded.get("line") else "")
            else:
                todo = [e["name"] for e, r in zip(exercises, lesson_results) if r["status"] != "pass"]
                if todo:
                    status += "   next: " + todo[0] + (f" (+{len(todo) - 1} more)" if len(todo) > 1 else "")
            print(f"  {lesson}  {filename:22s} {bar(done, len(exercises), 10)} {status}")
            if loaded["status"] != "broken":  # crashes and endless loops, so none goes unnoticed
                for exercise, result in zip(exercises, lesson_results):
                    if result["status"] == "timeout":
                        print(f"        {exercise['name']}: stopped after {args.time_limit:g} s (an endless loop?)"
                              + (f" at line {result['line']}" if result.get("line") else ""))
                    elif result["status"] == "error":
                        print(f"        {exercise['name']}: raised {result['message'].splitlines()[0][:60]}"
                              + (f" at line {result['line']}" if result.get("line") else ""))
            results += lesson_results
    finally:
        worker.stop()
    done, total = sum(r["status"] == "pass" for r in results), len(results)
    print()
    if first is not None:
        exercise, result, path = first
        report_exercise(exercise, result, path, SOLUTIONS / path.name, args)
    elif done == total:
        print(wrap("All selected exercises pass." + ("" if args.select else " Next, try a challenge on the real "
                                                     "MNIST: python exercises/check.py --challenge mlp")))
    print(f"Progress: {done}/{total} exercises done {bar(done, total)}")
    return 0 if done == total else 1


# ---------------------------------------------------------------------------
# --reset: put a lesson's untouched exercise file back
# ---------------------------------------------------------------------------
def reset_lesson(args) -> int:
    lesson = args.reset.strip().lower().removeprefix("ex").split("_")[0]
    lesson = f"{int(lesson):02d}" if lesson.isdigit() else lesson
    if lesson not in LESSONS:
        raise CheckerError(f"--reset {args.reset}: give a lesson number, 01 to 06.")
    folder = exercise_folder(args) if args.dir else HERE
    path, solution = folder / LESSONS[lesson], SOLUTIONS / LESSONS[lesson]
    stub = make_stub(solution.read_text(encoding="utf-8"))
    if path.is_file() and path.read_text(encoding="utf-8") == stub:
        print(f"{display(path)} is already untouched: nothing to reset.")
        return 0
    backup = folder / "backups" / f"{path.stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.py"
    if not args.yes:
        print(wrap(f"This replaces {display(path)} with its untouched exercises: your solutions in it are "
                   f"replaced by `raise NotImplementedError`. Your current file is kept as {display(backup)}."))
        try:
            answer = input("Reset it? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.")
            return 1
    if path.is_file():
        backup.parent.mkdir(exist_ok=True)
        backup.write_bytes(path.read_bytes())
        print(f"Your file was saved as {display(backup)}.")
    path.write_text(stub, encoding="utf-8")
    print(f"{display(path)} is back to its untouched exercises. Check it: python exercises/check.py {lesson}")
    return 0


# ---------------------------------------------------------------------------
# --challenge: train the learner's model on the real MNIST with the course's loop
# ---------------------------------------------------------------------------
def load_challenge(folder: Path, name: str):
    """The learner's challenge function; a broken file becomes one clear paragraph."""
    import importlib.util

    path = folder / "challenges.py"
    function = CHALLENGES[name]["function"]
    spec = importlib.util.spec_from_file_location("learner_challenges", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise CheckerError(f"{display(path)} is missing.") from None
    except SyntaxError as error:
        raise CheckerError(f"{display(path)} does not load: SyntaxError: {error.msg} at line {error.lineno}: "
                           f"{(error.text or '').strip()}") from None
    except Exception as error:
        line, text = learner_frame(error.__traceback__, str(path.resolve()))
        raise CheckerError(f"{display(path)} does not load: {type(error).__name__}: {error}"
                           + where(path, line, text) + ".") from None
    if not callable(getattr(module, function, None)):
        raise CheckerError(f"{display(path)} has no function {function}(): the challenge looks it up by name.")
    return path, getattr(module, function)


def challenge_model(fn, path: Path, spec: dict, name: str):
    """Call the learner's function and check what it returned: (model, settings)."""
    from torch import nn

    try:
        returned = fn()
    except Exception as error:
        line, text = learner_frame(error.__traceback__, str(path.resolve()))
        raise CheckerError(f"{spec['function']}() raised {type(error).__name__}: {error}" + where(path, line, text)
                           + ".") from None
    if not (isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[0], nn.Module)
            and isinstance(returned[1], dict)):
        raise CheckerError(f"{spec['function']}() should return (model, settings): an nn.Module and a dict; it "
                           f"returned {type(returned).__name__}.")
    model, settings = returned
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise CheckerError(f"{spec['function']}()'s settings have keys the challenge does not know: "
                           f"{', '.join(unknown)}. It knows: {', '.join(SETTINGS)}.")
    settings = {**SETTING_DEFAULTS, **settings}
    for key, kind in SETTINGS.items():
        value = settings.get(key)
        ok = isinstance(value, str) if kind is str else (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                         and (kind is float or float(value).is_integer()))
        if not ok:
            raise CheckerError(f"settings[{key!r}] should be {'a word' if kind is str else 'a number'}, "
                               f"got {value!r}.")
    settings = {key: settings[key] for key in SETTINGS}  # always in the same order
    settings["epochs"], settings["batch_size"] = int(settings["epochs"]), int(settings["batch_size"])
    if not 1 <= settings["epochs"] <= spec["max_epochs"]:
        raise CheckerError(f"The {name} challenge allows 1 to {spec['max_epochs']} epoch"
                           f"{'s' if spec['max_epochs'] > 1 else ''}; your settings ask for {settings['epochs']}.")
    if settings["batch_size"] < 1 or settings["lr"] <= 0:
        raise CheckerError("settings['batch_size'] and settings['lr'] must be positive.")
    if settings["optimizer"] not in ("adam", "sgd") or settings["scheduler"] not in ("constant", "onecycle"):
        raise CheckerError("settings['optimizer'] must be 'adam' or 'sgd', and settings['scheduler'] "
                           "'constant' or 'onecycle'.")
    convolutions = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if spec["fully_connected"] and convolutions:
        raise CheckerError(f"The {name} challenge is for fully connected networks, and yours has "
                           f"{len(convolutions)} convolution layer(s). Use nn.Linear layers (and activations, "
                           "dropout, batch norm...); the CNN has its own challenge: --challenge cnn.")
    return model, settings


def scheduled_epoch(scheduler):
    """03's train_one_epoch with one addition, a learning-rate schedule step after every batch (as in 06)."""
    def train_epoch(model, loader, loss_fn, optimizer) -> dict:
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for images, labels in loader:
            optimizer.zero_grad()
            logits = model(images)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            scheduler.step()  # OneCycle moves the learning rate on after every batch, not every epoch

            total_loss += loss.detach() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            seen += len(labels)
        return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}
    return train_epoch


def run_challenge(args) -> int:
    sys.path.insert(0, str(REPO))
    import torch
    from torch import nn

    import dl_utils

    spec = CHALLENGES[args.challenge]
    folder = exercise_folder(args)
    path, fn = load_challenge(folder, args.challenge)
    if args.seeds < 1:
        raise CheckerError("--seeds must be at least 1.")
    seeds = list(range(args.seeds))
    device, why = dl_utils.get_device(args.device)
    target = f"{'above' if spec['strict'] else 'at least'} {100 * spec['target']:g}%"
    print(wrap(f"Challenge {args.challenge}: {spec['task']}. Your model and settings: {spec['function']}() in "
               f"{display(path)}. Device: {device} ({why})."))
    model, settings = challenge_model(fn, path, spec, args.challenge)  # fail on bad settings before loading data
    data = dl_utils.load_mnist_data(args.data_dir, batch_size=settings["batch_size"], seed=0, device=device)
    out_dir = Path(args.out_dir) if args.out_dir else dl_utils.DEFAULT_OUT_DIR
    runs, load_before = [], os.getloadavg() if hasattr(os, "getloadavg") else None
    for seed in seeds:
        dl_utils.set_seed(seed)  # the same seed -> the same initial weights and batch order
        data.train_loader.generator.manual_seed(seed)
        model, settings = challenge_model(fn, path, spec, args.challenge)
        model = model.to(device)
        if device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model = model.to(memory_format=torch.channels_last)  # same maths, faster on a CPU: see docs/PERFORMANCE.md
        if settings["optimizer"] == "adam":
            optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                                        weight_decay=settings["weight_decay"])
        scheduler = None
        if settings["scheduler"] == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], epochs=settings["epochs"],
                                                            steps_per_epoch=len(data.train_loader))
        parameters = dl_utils.count_parameters(model)
        print(f"\nSeed {seed}: {parameters:,} parameters; " + ", ".join(f"{k} {v}" for k, v in settings.items()))
        loss_fn = nn.CrossEntropyLoss()
        train_epoch = dl_utils.train_one_epoch if scheduler is None else scheduled_epoch(scheduler)
        try:
            history = dl_utils.fit(model, data.train_loader, data.val_loader, loss_fn, optimizer,
                                   epochs=settings["epochs"], train_epoch=train_epoch)
        except RuntimeError as error:  # e.g. a layer size that does not fit the images
            raise CheckerError(f"Training your model failed: {error}. Check that it takes images of shape "
                               "(B, 1, 28, 28) and returns (B, 10) logits.") from None
        # The test set, read once per run, after every choice was made on validation.
        test = dl_utils.evaluate(model, data.test_loader, loss_fn)
        run = dl_utils.summarize_run(script=f"challenge_{args.challenge}", hyperparameters={**settings, "seed": seed},
                                     history=history, test_metrics=test, parameters=parameters, device=device)
        run["passed"] = test["accuracy"] > spec["target"] if spec["strict"] else test["accuracy"] >= spec["target"]
        runs.append(run)
        dl_utils.log_experiment(out_dir, run)  # one more row in your lab notebook, outputs/experiments.csv
        print(f"Seed {seed}: best validation accuracy {100 * run['best_val_accuracy']:.2f}%, test accuracy "
              f"{100 * test['accuracy']:.2f}% after {run['train_seconds']:.1f} s of training: "
              + ("PASS" if run["passed"] else f"not yet ({target} needed)"))
    accuracies = [run["test_accuracy"] for run in runs]
    mean = sum(accuracies) / len(accuracies)
    spread = (sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1)) ** 0.5 if len(runs) > 1 else 0.0
    passed = all(run["passed"] for run in runs)
    results = {
        "script": f"challenge_{args.challenge}", "challenge": args.challenge, "task": spec["task"],
        "target": spec["target"], "max_epochs": spec["max_epochs"], "solutions": args.solutions,
        "device": runs[0]["device"], "torch_version": torch.__version__, "parameters": runs[0]["parameters"],
        "settings": runs[0]["hyperparameters"], "seeds": seeds,
        "test_accuracy": mean, "test_accuracy_std": spread, "test_accuracy_per_seed": accuracies,
        "test_accuracy_min": min(accuracies),
        "best_val_accuracy": sum(r["best_val_accuracy"] for r in runs) / len(runs),
        "train_seconds": sum(r["train_seconds"] for r in runs) / len(runs),
        "train_seconds_max": max(r["train_seconds"] for r in runs),
        "passed": passed, "runs": runs,
        # Other programs slow training down: the CPU load (1, 5, 15 min) before and after the runs.
        "load_before": load_before, "load_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    saved = dl_utils.save_results(out_dir, f"challenge_{args.challenge}", results)
    print()
    summary = (f"test accuracy {100 * mean:.2f}%" + (f" (mean of {len(runs)} seeds, +- {100 * spread:.2f}, lowest "
                                                      f"{100 * min(accuracies):.2f}%)" if len(runs) > 1 else "")
               + f", {results['train_seconds']:.1f} s of training per run")
    if passed:
        print(wrap(f"PASSED: {summary}. Target: {target}."))
    else:
        print(wrap(f"Not yet: {summary}; the target is {target}. Tune your settings by the VALIDATION accuracy "
                   "printed after each epoch (the test set is for the final report), then run it again. Ideas: "
                   "03's 'Try this' table in LEARNING_GUIDE.md."))
    print(f"Saved {display(saved)}")
    return 0 if passed else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    try:
        if args.reset:
            return reset_lesson(args)
        if args.challenge:
            return run_challenge(args)
        if args.time_limit <= 0:
            raise CheckerError("--time-limit must be a positive number of seconds.")
        return check_exercises(args)
    except KeyboardInterrupt:
        print("\nStopped (Ctrl-C). Your files are unchanged.")
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left; nothing more to say
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
