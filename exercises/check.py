"""Check your exercises: python exercises/check.py

Like rustlings: it checks the exercises in course order, shows the first one you have not solved yet (its task, and
what was expected against what your function returned), then `Progress: N/M exercises done` and the checklist.

    python exercises/check.py               # every lesson, in course order, then the checklist
    python exercises/check.py 03            # lesson 03 only (or: 01 04, or an exercise's name)
    python exercises/check.py 03 --hint     # a hint for the first unsolved exercise (--hint 2: a closer one)
    python exercises/check.py --solutions   # check the reference solutions instead of your files
    python exercises/check.py --reset 03    # put lesson 03's untouched exercises back (asks; keeps a backup)
    python exercises/check.py --challenge mlp --data-dir DATA_DIR   # train on the real MNIST: challenge_trainer.py

Your files are only read. Each exercise runs with a time limit: an endless loop or a crash is reported with its
line, and the others are still checked. No MNIST needed, except for --challenge. Exit status 0 exactly when every
selected exercise passes.
"""

import argparse
import ast
import contextlib
import faulthandler
import io
import re
import sys
import textwrap
import time
import traceback
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOLUTIONS = HERE / "solutions"
# Lesson -> its exercise file, in course order. 08 (fix it) comes after 06: it debugs what 03-06 taught.
LESSONS = {"01": "ex01_tensors.py", "02": "ex02_data.py", "03": "ex03_training.py", "04": "ex04_load_model.py",
           "05": "ex05_experiments.py", "06": "ex06_cnn.py", "08": "ex08_fix_it.py"}
TIME_LIMIT = 10.0  # seconds per exercise: the slowest check takes well under 1 s; an endless loop is cut off
WIDTH = 78  # the width of the printed report
sys.path[:0] = [str(HERE), str(REPO)]  # for checks.py, challenge_trainer.py and dl_utils.py


class CheckerError(SystemExit):
    """A problem the learner can fix, said in one paragraph; exits with status 1, no traceback."""
    def __init__(self, message: str):
        super().__init__(textwrap.fill(message, WIDTH))


class ExerciseTimeout(BaseException):
    """Raised inside the learner's code when its time is up (`except Exception` in that code cannot swallow it)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python exercises/check.py", description=__doc__.splitlines()[0],
                                     epilog="Your files are only read (--reset asks first, and keeps a backup).")
    add = parser.add_argument
    add("select", nargs="*", metavar="LESSON", help="lessons to check, e.g. 03 or 1 4, or an exercise's name")
    add("--hint", nargs="?", const="1", metavar="STEP", help="a hint, in steps: the idea; --hint 2 a closer pointer")
    add("--solutions", action="store_true", help="check the reference solutions in exercises/solutions/")
    add("--dir", metavar="FOLDER", help="check (or --reset) the exercise files in FOLDER instead of exercises/")
    add("--reset", metavar="LESSON", help="restore a lesson's untouched exercise file (asks; keeps a backup)")
    add("--yes", action="store_true", help="with --reset: do not ask")
    add("--time-limit", type=float, default=TIME_LIMIT, metavar="SECONDS", help="per exercise (default: %(default)s)")
    add("--challenge", choices=("mlp", "cnn", "few"), help="train your exercises/challenges.py model on the real MNIST")
    add("--data-dir", help="with --challenge: the folder holding MNIST/raw/")
    add("--out-dir", help="with --challenge: where its results JSON goes (default: outputs/)")
    add("--seeds", type=int, default=1, help="with --challenge: train with this many seeds, 0, 1, ... (default: 1)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="with --challenge: where to train")
    return parser


# --- Reading the exercise files (no torch needed): tasks, comments, stubs --------------------------------------
def functions(path: Path) -> dict[str, ast.FunctionDef]:
    """The top-level functions of a file, by name ({} if it is missing or does not parse)."""
    with contextlib.suppress(SyntaxError, ValueError, OSError):
        return {n.name: n for n in ast.parse(Path(path).read_text(encoding="utf-8")).body
                if isinstance(n, ast.FunctionDef)}
    return {}


def untouched(filename: str) -> str:
    """A lesson's untouched exercise file: its solutions, each body `raise NotImplementedError` (docstrings and
    comments stay), or, where the exercises are code to fix, not to write (08), the copy in solutions/untouched/."""
    if (SOLUTIONS / "untouched" / filename).is_file():
        return (SOLUTIONS / "untouched" / filename).read_text(encoding="utf-8")
    lines = (solution_text := (SOLUTIONS / filename).read_text(encoding="utf-8")).splitlines()
    for node in reversed([n for n in ast.parse(solution_text).body if isinstance(n, ast.FunctionDef)]):
        start = node.body[0].end_lineno if ast.get_docstring(node) is not None else node.lineno
        lines[start:node.end_lineno] = [" " * (node.col_offset + 4) + "raise NotImplementedError  # replace this "
                                        "line with your code"]
    return re.sub(r"\n# Reference solutions[^\n]*\n\n?", "\n", "\n".join(lines) + "\n")


# --- Running the learner's code: in this process, with a time limit, its output and errors caught --------------
@contextlib.contextmanager
def learner_code(path: Path, seconds: float, printed: io.StringIO):
    """Run the learner's code with its prints caught, no keyboard, and a time limit: a trace function, called at
    every line of the learner's file, raises ExerciseTimeout there once time is up, so the error names that line.
    A hang inside C code, which traces nothing, is ended by faulthandler 10 s later (the checker stops)."""
    deadline, stdin, tracer = time.monotonic() + seconds, sys.stdin, sys.gettrace()

    def each_line(frame, event, arg):
        if time.monotonic() > deadline:
            raise ExerciseTimeout
        return each_line
    sys.stdin = io.StringIO("")  # input() ends at once instead of waiting for a keyboard
    with contextlib.suppress(Exception):  # the backstop needs a real stderr (pythonw has none)
        faulthandler.dump_traceback_later(seconds + 10, exit=True, file=sys.__stderr__)
    sys.settrace(lambda frame, event, arg: each_line if frame.f_code.co_filename == str(path) else None)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            yield
    finally:
        sys.settrace(tracer)  # a debugger's or coverage's, if any
        faulthandler.cancel_dump_traceback_later()
        sys.stdin = stdin


def learner_frame(error: BaseException, path: Path) -> dict:
    """{"line", "code"} of the innermost traceback frame in the learner's file ({} if none)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    return {"line": frames[-1].lineno, "code": (frames[-1].line or "").strip()} if frames else {}


def load_module(path: Path, seconds: float = TIME_LIMIT):
    """Run the learner's file as a module, or say in a dict why it does not load."""
    if not path.is_file():
        return {"status": "broken", "message": "there is no such file. If your copy of the course is older than lesson "
                f"{path.name[2:4]}, python exercises/check.py --reset {path.name[2:4]} writes its untouched exercises"}
    module = types.ModuleType("learner_" + path.stem)
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # so that pickle (torch.save) finds the classes the learner defines
    try:
        with learner_code(path, seconds, io.StringIO()):
            exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    except (Exception, SystemExit, ExerciseTimeout) as error:  # anything but Ctrl-C: report it, keep going
        syntax = isinstance(error, SyntaxError)  # compile()'s: its line is in the error, not in the traceback
        at = {"line": error.lineno, "code": (error.text or "").strip()} if syntax else learner_frame(error, path)
        message = f"{type(error).__name__}: {error.msg if syntax else error}"
        return {"status": "broken", **at, "message": message if not isinstance(error, ExerciseTimeout) else
                f"loading it took more than {seconds:g} s (an endless loop outside the functions?)"}
    return module


def run_check(exercise, module, path: Path, seconds: float) -> dict:
    """Run one exercise's check on the learner's function: pass, todo, missing, fail, timeout or error."""
    import torch
    from checks import Fail
    if not callable(getattr(module, exercise.name, None)):
        return {"status": "missing"}
    try:
        with learner_code(path, seconds, printed := io.StringIO()):
            exercise.check(getattr(module, exercise.name))
        result = {"status": "pass"}
    except Fail as failure:
        cause = failure.__cause__ or failure.__context__
        result = {"status": "fail", "message": str(failure), **(learner_frame(cause, path) if cause else {})}
    except (Exception, SystemExit, ExerciseTimeout) as error:  # it raised, or ran out of time: say where
        at, text = learner_frame(error, path), f"{type(error).__name__}: {error}".strip()
        shapes = isinstance(error, RuntimeError) and re.search(r"cannot be multiplied|must match the size|shape", text)
        result = {"status": "timeout" if isinstance(error, ExerciseTimeout) else "todo" if isinstance(
            error, NotImplementedError) and "NotImplementedError" in at.get("code", "") else "error", **at,
            "message": text + ("\n(A shape mismatch: print the shapes of the tensors on that line, e.g. "
                               "print(x.shape, weight.shape), and write down what each dimension means.)" if shapes
                               else "")}
    torch.set_grad_enabled(True)  # in case the learner's code switched these off or changed them
    torch.set_default_dtype(torch.float32)
    return {**result, "printed": printed.getvalue()[-1500:]}


# --- The report ------------------------------------------------------------------------------------------------
def display(path: Path) -> str:
    return Path(path).relative_to(REPO).as_posix() if Path(path).is_relative_to(REPO) else str(path)


def where(path: Path, line=None, code: str | None = None) -> str:
    with contextlib.suppress(OSError, IndexError, UnicodeDecodeError, TypeError):
        code = code or Path(path).read_text(encoding="utf-8").splitlines()[line - 1].strip()
    return f" at {display(path)} line {line}" + (f": {code}" if code else "") if line else ""


def bar(done: int, total: int, width: int = 30) -> str:
    return "[" + "#" * (filled := round(width * done / total) if total else width) + "-" * (width - filled) + "]"


def wrap(text: str) -> str:
    return "\n".join(textwrap.fill(paragraph, WIDTH) for paragraph in text.split("\n"))


def explain(result: dict, path: Path, time_limit: float) -> str:
    """What went wrong with one exercise, in plain words."""
    status, line, lesson = result["status"], result.get("line"), result.get("lesson", "LESSON")
    return {"missing": f"There is no function called {result.get('name')} in {display(path)}: the checker looks each "
                       "exercise up by its name. Did you rename or delete it? If your copy is older than the course, "
                       f"copy the untouched function (def line and docstring) from {display(SOLUTIONS / path.name)}, "
                       f"or run python exercises/check.py --reset {lesson} (it asks, and keeps your file as a backup).",
            "todo": f"Not started yet: the function still raises NotImplementedError (line {line}). Replace that line "
                    "with your code.",
            "broken": f"{display(path)} does not load, so none of its exercises can be checked: "
                      f"{result.get('message')}{where(path, line, result.get('code'))}.",
            "timeout": f"Still running after {time_limit:g} s, so it was stopped: an endless loop?" + (
                where(path, line) + " (where it was when stopped)" if line else "") + ". A loop over a loader ends "
                "by itself; a `while` loop needs a condition that becomes false.",
            "error": f"Your code raised {result.get('message')}{where(path, line, result.get('code'))}.",
            }.get(status, f"{result.get('message')}" + (f"\n(The error came{where(path, line, result.get('code'))}.)"
                                                         if line else ""))


def report_exercise(lesson: str, name: str, result: dict, path: Path, hints, args) -> None:
    """The block about the first unsolved exercise: where, what it practises, the task, what went wrong, a hint."""
    node, solution = functions(path).get(name), SOLUTIONS / path.name
    model = functions(solution)[name]  # its task (docstring), and the comment above it: what it practises
    above = solution.read_text(encoding="utf-8").splitlines()[model.lineno - 2].lstrip("# ")
    print("-" * WIDTH + f"\nNext: {name} in {display(path)}" + (f" (line {node.lineno})" if node else ""))
    print(wrap("Practises: " + above.replace("\u00b7", "-")))
    if result["status"] != "broken":
        print("\n" + textwrap.indent(ast.get_docstring(model), "    "))
    print("\n" + wrap(explain({**result, "name": name, "lesson": lesson}, path, args.time_limit)))
    if result.get("printed", "").strip():
        print("\nYour code printed:\n" + textwrap.indent(result["printed"].rstrip()[-800:], "    "))
    again, step = f"python exercises/check.py {lesson}" + (f" --dir {args.dir}" if args.dir else ""), 0
    if args.hint and hints:  # in steps: the idea, then a closer pointer; the answer is only in the solution file
        step = min(int(args.hint), len(hints))
        print("\n" + wrap(f"Hint {step}/{len(hints)}: {hints[step - 1]}\n" + (
            f"A closer hint: {again} --hint {step + 1}" if step < len(hints) else "That was the last hint: the "
            f"solution file, {display(solution)}, has the answer.")))
    else:
        print("\n" + wrap(f"Stuck? {again} --hint"))
    if not args.solutions:
        print(wrap(f"Edit {display(path)}, save, and run {again} again. The reference solution is in "
                   f"{display(solution)}: try first without looking."))
    print("-" * WIDTH)


def checklist(items: list, passed: set, known: set) -> list[str]:
    """The success checklist: each item done when all its exercises pass, else the exercise to do next."""
    lines = ["Success checklist (LEARNING_GUIDE.md):"]
    for text, names in items:
        todo = [] if isinstance(names, str) else [n for n in names if n not in passed]
        state = names if isinstance(names, str) else f"next: {todo[0]}" + (
            "" if todo[0] in known else " (coming)") if todo else "done"
        lines.append(f"  [{'x' if state == 'done' else ' '}] {text:<44} {state}")
    return lines


def selected_exercises(all_exercises: list[dict], select: list[str]) -> list[dict]:
    known, lessons, names = {e["name"] for e in all_exercises}, set(), set()
    with_exercises = sorted({e["lesson"] for e in all_exercises})  # a lesson of LESSONS whose solution file is there
    for item in select:
        item = item if item in known else item.strip().lower().removeprefix("ex").split("_")[0]
        if not (item in known or item.isdigit() and f"{int(item):02d}" in with_exercises):
            raise CheckerError(f"{item!r} is neither a lesson ({', '.join(with_exercises)}) nor an exercise. The "
                               "exercises: " + ", ".join(sorted(known)) + ".")
        names.add(item) if item in known else lessons.add(f"{int(item):02d}")
    return [e for e in all_exercises if not select or e["lesson"] in lessons or e["name"] in names]


def check_exercises(args) -> int:
    # The exercises, in course order, from the solution files (the checks in checks.py have the same names).
    everything = [{"lesson": lesson, "name": name} for lesson, filename in LESSONS.items()
                  for name in functions(SOLUTIONS / filename)]
    chosen = selected_exercises(everything, args.select)  # a typo is reported before torch is imported
    print(f"Checking {'the reference solutions' if args.solutions else 'your exercises'} in {display(args.folder)}/, "
          "in course order:\n")
    import checks  # imports torch (a few seconds)
    import torch
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # imports torch._dynamo now, outside any limit
    by_name, passed, first = {e.name: e for e in checks.EXERCISES}, set(), None
    for lesson, filename in LESSONS.items():
        names, path = [e["name"] for e in chosen if e["lesson"] == lesson], args.folder / filename
        if not names:
            continue
        module = load_module(path, args.time_limit)
        results = [module if isinstance(module, dict) else run_check(by_name[name], module, path, args.time_limit)
                   for name in names]
        todo = [(name, result) for name, result in zip(names, results) if result["status"] != "pass"]
        passed |= set(names) - {name for name, _ in todo}
        first = first or (todo and (lesson, *todo[0], path))
        line = isinstance(module, dict) and module.get("line")
        row = f"{len(names) - len(todo)}/{len(names)} done" + (
            ", the file does not load" + (f" (line {line})" if line else "") if results[0]["status"] == "broken"
            else f"   next: {todo[0][0]}" + (f" (+{len(todo) - 1} more)" if len(todo) > 1 else "") if todo else "")
        print(f"  {lesson}  {filename:22s} {bar(len(names) - len(todo), len(names), 10)} {row}")
        for name, result in [item for item in todo if item[1]["status"] in ("timeout", "error")]:  # none unnoticed
            print(f"        {name}: " + (f"stopped after {args.time_limit:g} s (an endless loop?)" if result["status"]
                                         == "timeout" else f"raised {result['message'].splitlines()[0][:60]}")
                  + (f" at line {result['line']}" if result.get("line") else ""))
    print()
    if first:
        report_exercise(*first, by_name[first[1]].hints, args)
    else:
        print(wrap("All selected exercises pass." + ("" if args.select else " Next, try a challenge on the real "
                                                     "MNIST: python exercises/check.py --challenge mlp")))
    print(f"Progress: {len(passed)}/{len(chosen)} exercises done {bar(len(passed), len(chosen))}")
    if not args.select:
        print("\n" + "\n".join(checklist(checks.CHECKLIST, passed, {e["name"] for e in everything})))
    return 0 if len(passed) == len(chosen) else 1


def reset_lesson(args) -> int:
    """--reset: put a lesson's untouched exercise file back, after asking; the learner's file goes to backups/."""
    lesson = args.reset.strip().lower().removeprefix("ex").split("_")[0].zfill(2)
    if not (SOLUTIONS / LESSONS.get(lesson, "-")).is_file():
        raise CheckerError(f"--reset {args.reset}: give a lesson number with exercises: " + ", ".join(
            k for k, f in LESSONS.items() if (SOLUTIONS / f).is_file()) + ".")
    folder = args.folder if args.dir else HERE
    path, stub = folder / LESSONS[lesson], untouched(LESSONS[lesson])
    if path.is_file() and path.read_text(encoding="utf-8") == stub:
        print(f"{display(path)} is already untouched: nothing to reset.")
        return 0
    backup = folder / "backups" / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.py"
    if not args.yes:
        print(wrap(f"This replaces {display(path)} with its untouched exercises: your work in it is undone (each "
                   f"function as it was when you started). Your current file is kept as {display(backup)}."))
        with contextlib.suppress(EOFError):
            args.yes = input("Reset it? [y/N] ").strip().lower() in ("y", "yes")
        if not args.yes:
            print("Nothing changed.")
            return 1
    if path.is_file():
        backup.parent.mkdir(exist_ok=True)
        backup.write_bytes(path.read_bytes())
        print(f"Your file was saved as {display(backup)}.")
    path.write_text(stub, encoding="utf-8")
    print(f"{display(path)} is back to its untouched exercises. Check it: python exercises/check.py {lesson}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.hint is not None and not (args.hint.isdigit() and len(args.hint) == 1):  # `--hint 03`: a lesson, step 1
        args.select, args.hint = [*args.select, args.hint], "1"
    args.folder = Path(args.dir).expanduser().resolve() if args.dir else SOLUTIONS if args.solutions else HERE
    try:
        if args.time_limit <= 0 or args.hint == "0" or not args.folder.is_dir():
            raise CheckerError(f"--dir {args.dir}: there is no such folder." if not args.folder.is_dir() else
                               "--time-limit must be a positive number of seconds, and --hint's step 1 or more.")
        if args.challenge:  # the trainer has its own file, beside this one
            from challenge_trainer import run_challenge
            return run_challenge(args)
        return reset_lesson(args) if args.reset else check_exercises(args)
    except KeyboardInterrupt:
        print("\nStopped (Ctrl-C). Your files are unchanged.")
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left; nothing more to say
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
