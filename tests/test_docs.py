"""The docs must tell the truth about the code and about what was measured.

Checks on README.md, LEARNING_GUIDE.md and ML_CONCEPTS_EXPLAINED.md:

  * every relative link and image resolves to a file, and every #anchor
    (same file or FILE.md#anchor) to a heading, with GitHub's slug rules
  * every script the docs name exists, every `X` in `NN_name.py` names
    something the script defines, every "`NN_name.py` section N" exists
  * every command `python NN_name.py --flag ...` (or benchmarks/*.py) in a
    code block or inline code uses flags, and values, the script accepts
  * every measured number carries a marker, <!-- r:RUN:KEY.PATH[:%] -->,
    and agrees with docs/results/RUN.json to the precision it is shown
  * every percentage or time in a table under a "Results" heading has one
  * no `TODO(measure: ...)` placeholder is left once results exist
  * ML_CONCEPTS_EXPLAINED.md has the 22 sections the scripts and the
    guide link to, each with "See it in code" and "Try this"

Markers (HTML comments, invisible on GitHub) sit right after the number:

    97.67% <!-- r:03_train_mnist:test_accuracy:% -->      fraction shown x 100
    9.8 s <!-- r:03_train_mnist:train_seconds -->
    101,770 <!-- r:03_train_mnist:parameters -->
    92.1% <!-- r:05_experiment_architectures:architectures.3.test_accuracy:% -->
    0.502 <!-- r:01_hello_pytorch:softmax.temperatures.2.0.0 -->

A path segment that is a whole number indexes a list (-1 is the last); at a
dict, the longest run of segments that is a key wins, so keys holding dots
("2.0") need no escaping. A number "agrees" when it is within half a unit
of its last shown digit: 97.67% accepts 97.665 to 97.675.

Until docs/results/ exists, write an unmeasured number as
`TODO(measure: RUN:KEY.PATH[:%])`. `python tests/test_docs.py --fill`
replaces each one with the measured value and its marker.

Fast (no training, no MNIST): it imports the scripts only to read their
argument parsers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS_DIR = REPO / "docs" / "results"
DOCS = ["README.md", "LEARNING_GUIDE.md", "ML_CONCEPTS_EXPLAINED.md", "docs/PERFORMANCE.md"]
REQUIRED_DOCS = ["README.md", "ML_CONCEPTS_EXPLAINED.md"]
CONCEPTS = "ML_CONCEPTS_EXPLAINED.md"

# The sections of ML_CONCEPTS_EXPLAINED.md, as level-2 headings, in this order.
# The scripts' comments and LEARNING_GUIDE.md link to them by name and anchor.
CONCEPT_HEADINGS = [
    "Tensors",
    "Model Capacity",
    "Activation Functions",
    "Hyperparameters",
    "Learning Rate",
    "Epochs, Batches & Iterations",
    "Optimizers",
    "Forward & Backward Pass",
    "Loss Functions",
    "Backpropagation",
    "Gradients",
    "Overfitting & Underfitting",
    "Regularization",
    "Convergence",
    "Normalization",
    "Generalization",
    "Train, Validation & Test Sets",
    "Convolutions & Pooling",
    "Universal Approximation",
    "Vanishing & Exploding Gradients",
    "Initialization",
    "Saliency, Calibration & Decision Boundaries",
]


# ---------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------
FENCE = re.compile(r"^\s*(```|~~~)")


def split_fences(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, code lines) as (line number, text); fence lines themselves are dropped."""
    prose, code, inside = [], [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append((number, line))
    return prose, code


INLINE_CODE = re.compile(r"(`+)(.+?)\1")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: `Forward & Backward Pass` -> `forward--backward-pass`.

    GitHub lowercases the heading's text, deletes every character that is
    not a letter, a digit, a space, a hyphen or an underscore, and turns each
    space into a hyphen (so " & " becomes "--"). Markdown around the text
    (links, code ticks, emphasis, HTML tags) is not part of it.
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w: letters, digits, underscore (Unicode too)
    return text.replace(" ", "-")


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title, line number) of every ATX heading outside code blocks."""
    found = []
    for number, line in split_fences(text)[0]:
        match = HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2), number))
    return found


def anchors(text: str) -> set[str]:
    """Every anchor a file offers: heading slugs (duplicates get -1, -2, ...) and <a id/name>."""
    seen: dict[str, int] = {}
    result = set()
    for _, title, _ in headings(text):
        slug = github_slug(title)
        if slug in seen:
            seen[slug] += 1
            result.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            result.add(slug)
    result.update(re.findall(r"<a\s+(?:id|name)=[\"']([^\"']+)[\"']", text))
    return result


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*?(?:src|href)=[\"']([^\"']+)[\"']")


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line, target) of every markdown link/image and HTML src/href outside code."""
    targets = []
    for number, line in split_fences(text)[0]:
        line = INLINE_CODE.sub("", HTML_COMMENT.sub("", line))
        targets += [(number, t) for t in LINK.findall(line)]
        targets += [(number, t) for t in HTML_SRC.findall(line)]
    return targets


_ANCHORS: dict[Path, set[str]] = {}


def file_anchors(path: Path) -> set[str]:
    if path not in _ANCHORS:
        _ANCHORS[path] = anchors(path.read_text(encoding="utf-8"))
    return _ANCHORS[path]


def check_links(doc: Path) -> list[str]:
    """Problems with the relative links and #anchors of one markdown file."""
    problems = []
    text = doc.read_text(encoding="utf-8")
    _ANCHORS.pop(doc.resolve(), None)  # the file may have changed since it was last read
    for number, target in link_targets(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc if not path else doc.parent / path).resolve()
        where = f"{doc.name}:{number}: link {target!r}"
        if not file.exists():
            problems.append(f"{where}: no file {path!r}")
            continue
        if anchor and file.suffix == ".md":
            if anchor not in file_anchors(file):
                problems.append(f"{where}: {file.name} has no heading with anchor #{anchor}")
    return problems


def sections(text: str) -> dict[str, str]:
    """Level-2 heading title -> the text under it, up to the next level-2 heading."""
    lines = text.splitlines()
    marks = [(title, number) for level, title, number in headings(text) if level == 2]
    result = {}
    for i, (title, number) in enumerate(marks):
        end = marks[i + 1][1] - 1 if i + 1 < len(marks) else len(lines)
        result[title] = "\n".join(lines[number:end])
    return result


# ---------------------------------------------------------------------------
# Measured numbers: markers, their values, results tables, TODOs
# ---------------------------------------------------------------------------
MARKER = re.compile(r"<!--\s*r:([\w.-]+):([\w.-]+?)(:%)?\s*-->")
# The number just before a marker: optional "~" / "about" / "+" / "-", digits
# with thousands commas, decimals, then a unit; bold or code ticks may close it.
NUMBER_BEFORE = re.compile(
    r"(?P<number>[+\-\u2212]?\d[\d,]*(?:\.\d+)?)\s*(?P<unit>%|ms|s|KB|MB|GB)?[*_`]*\s*$")
TODO = re.compile(r"TODO\(measure:?\s*([^)]*)\)")
TODO_BODY = re.compile(r"^([\w.-]+):([\w.-]+?)(:%)?$")


class MissingValue(LookupError):
    pass


def lookup(data, path: str):
    """Follow a dotted path into JSON data; see the module docstring for the rules."""
    parts = path.split(".")
    node, i = data, 0
    while i < len(parts):
        if isinstance(node, list):
            try:
                node = node[int(parts[i])]
            except (ValueError, IndexError):
                raise MissingValue(f"no list index {parts[i]!r} (the list has {len(node)} items)") from None
            i += 1
        elif isinstance(node, dict):
            for j in range(len(parts), i, -1):  # the longest key first: "2.0" before "2"
                key = ".".join(parts[i:j])
                if key in node:
                    node, i = node[key], j
                    break
            else:
                raise MissingValue(f"no key {parts[i]!r} (keys: {', '.join(map(str, node))[:200]})")
        else:
            raise MissingValue(f"{'.'.join(parts[:i])!r} is a {type(node).__name__}, not a dict or list")
    return node


def shown_precision(number: str) -> float:
    """Half a unit of the last shown digit: "97.67" -> 0.005, "101,770" -> 0.5."""
    decimals = len(number.split(".")[1]) if "." in number else 0
    return 0.5 * 10 ** -decimals


def check_marker(shown: str, value, percent: bool) -> str | None:
    """None if the shown number agrees with the measured value, else why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"the measured value {value!r} is not a finite number"
    number = float(shown.replace(",", "").replace("\u2212", "-"))
    measured = value * 100 if percent else value
    if abs(number - measured) > shown_precision(shown) + 1e-9 * max(1.0, abs(measured)):
        return f"the docs say {shown}, the measurement is {measured:.6g}"
    return None


def find_markers(text: str) -> list[dict]:
    """Every marker with the number written just before it (None when there is none)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in MARKER.finditer(line):
            before = HTML_COMMENT.sub("", line[:match.start()])
            shown = NUMBER_BEFORE.search(before)
            found.append({"line": number, "run": match.group(1), "path": match.group(2),
                          "percent": bool(match.group(3)),
                          "number": shown.group("number") if shown else None,
                          "marker": match.group(0)})
    return found


def check_markers(text: str, load_results, name: str = "doc") -> list[str]:
    """Problems with the markers of one text; load_results(run) -> dict, or None if missing."""
    problems = []
    for m in find_markers(text):
        where = f"{name}:{m['line']}: {m['marker']}"
        if m["number"] is None:
            problems.append(f"{where}: no number right before the marker")
            continue
        results = load_results(m["run"])
        if results is None:
            problems.append(f"{where}: no results file docs/results/{m['run']}.json")
            continue
        try:
            value = lookup(results, m["path"])
        except MissingValue as error:
            problems.append(f"{where}: {m['run']}.json has no {m['path']}: {error}")
            continue
        mismatch = check_marker(m["number"], value, m["percent"])
        if mismatch:
            problems.append(f"{where}: {mismatch}")
    return problems


# ---------------------------------------------------------------------------
# The same check, without the clutter: docs/results/quoted_numbers.json
# ---------------------------------------------------------------------------
# A marker reads as noise in a terminal. So the docs a learner reads carry
# none: `python tests/test_docs.py --fold` moves each marker into
# quoted_numbers.json as [the words ending with the number, "RUN:PATH[:%]"],
# e.g. ["03's MLP reaches 97.37%", "03_train_mnist:test_accuracy:%"], and
# the check finds those words in the doc and compares their number.
QUOTED = RESULTS_DIR / "quoted_numbers.json"
CLEAN_DOCS = ["README.md", "LEARNING_GUIDE.md", "ML_CONCEPTS_EXPLAINED.md"]  # no markers left in these


def load_quoted() -> dict:
    return json.loads(QUOTED.read_text(encoding="utf-8")) if QUOTED.is_file() else {}


def fold_markers(text: str) -> tuple[str, list[list[str]]]:
    """Remove the markers from `text`; return it and one [words, source] entry per marker.

    The words are the shortest run of whole words before the marker (at
    least three, ending with the number) that occurs once in the new text.
    """
    clean = re.sub(r"[ \t]*" + MARKER.pattern, "", text)  # "97.37% <!-- r:... -->." -> "97.37%."
    entries = []
    for line in text.splitlines():
        for match in MARKER.finditer(line):
            before = re.sub(r"[ \t]*" + MARKER.pattern, "", line[:match.start()]).rstrip()
            words = before.split(" ")
            snippet = before
            for n in range(3, len(words) + 1):
                candidate = " ".join(words[-n:]).lstrip("|").strip()
                if clean.count(candidate) == 1:
                    snippet = candidate
                    break
            entries.append([snippet.strip(), f"{match.group(1)}:{match.group(2)}{match.group(3) or ''}"])
    return clean, entries


def check_quoted(text: str, entries: list, load_results, name: str = "doc") -> list[str]:
    """Problems with the quoted_numbers.json entries of one doc: words not found, or numbers that moved."""
    problems = []
    for snippet, source in entries:
        where = f"{name}: {snippet!r} ({source})"
        body = TODO_BODY.match(source)
        shown = NUMBER_BEFORE.search(snippet)
        if body is None or shown is None:
            problems.append(f"{where}: no number at the end, or the source is not RUN:PATH[:%]")
            continue
        if snippet not in text:
            problems.append(f"{where}: these words are no longer in {name}; edit the entry in "
                            "docs/results/quoted_numbers.json, or put the marker back and --fold again")
            continue
        results = load_results(body.group(1))
        try:
            value = lookup(results, body.group(2)) if results is not None else None
        except MissingValue as error:
            problems.append(f"{where}: {error}")
            continue
        if results is None:
            problems.append(f"{where}: no results file docs/results/{body.group(1)}.json")
            continue
        mismatch = check_marker(shown.group("number"), value, bool(body.group(3)))
        if mismatch:
            problems.append(f"{where}: {mismatch}")
    return problems


def refresh_quoted(text: str, entries: list, load_results) -> tuple[str, list[str]]:
    """--refresh for quoted_numbers.json: rewrite moved numbers in the doc and in its entries."""
    changes = []
    for entry in entries:
        line = f"{entry[0]} <!-- r:{entry[1]} -->"
        new_line, changed = refresh_numbers(line, load_results)
        if changed and entry[0] in text:
            new_snippet = MARKER.sub("", new_line).rstrip()
            text = text.replace(entry[0], new_snippet)
            changes.append(f"{entry[0]!r} -> {new_snippet!r}")
            entry[0] = new_snippet
    return text, changes


UNMARKED_IN_TABLE = re.compile(r"\d(?:[\d,]*\d)?(?:\.\d+)?\s*(?:%|ms\b|s\b|min\b|KB\b|MB\b|GB\b)")


def unmarked_results(text: str, name: str = "doc", quoted: list | None = None) -> list[str]:
    """Percentages, times and sizes in table rows under a "Results" heading that carry no marker.

    A figure that ends one of the doc's quoted_numbers.json entries counts as marked.
    """
    problems, stack = [], []  # stack: the headings above the current line, by level
    prose, _ = split_fences(text)
    for number, line in prose:
        match = HEADING.match(line)
        if match:
            level = len(match.group(1))
            stack = [h for h in stack if h[0] < level] + [(level, match.group(2))]
            continue
        if not line.lstrip().startswith("|") or not any("results" in h[1].lower() for h in stack):
            continue
        ends = {m.start() + len(snippet) for snippet, _ in quoted or [] for m in re.finditer(re.escape(snippet), line)}
        offset = len(line) - len(line.lstrip().lstrip("|"))
        for cell in line.strip().strip("|").split("|"):
            cell_start = line.index(cell, offset)
            offset = cell_start + len(cell)
            for figure in UNMARKED_IN_TABLE.finditer(cell):
                rest = cell[figure.end():]
                end = cell_start + figure.end()
                if any(end <= e <= end + 3 for e in ends):  # "97.69%" or "97.69%**"
                    continue
                if not re.match(r"[*_`]*\s*<!--\s*r:", rest):
                    problems.append(f"{name}:{number}: {figure.group(0).strip()!r} in a results table "
                                    "has no <!-- r:RUN:KEY --> marker saying where it was measured")
    return problems


def load_committed(run: str):
    path = RESULTS_DIR / f"{run}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def planned_runs() -> set[str]:
    """The run names benchmarks/run_all.py writes to docs/results/."""
    spec = importlib.util.spec_from_file_location("docs_run_all", REPO / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {run[0] for run in module.RUNS}


def format_measured(value, path: str, percent: bool) -> str:
    """How `--fill` writes a measured value: 97.67%, 9.8 s, 101,770, 0.1306, 1.073."""
    if percent:
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if path.split(".")[-1].endswith("seconds") or path.split(".")[-2:-1] == ["seconds"]:
        return f"{value:.1f} s"
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.4g}"  # 0.0195, 0.1306, 1.073, 7


def refresh_numbers(text: str, load_results) -> tuple[str, list[str]]:
    """Rewrite every marked number that disagrees with its measurement, at the precision shown.

    For after a rerun of benchmarks/run_all.py: returns the new text and one
    line per change ("LINE: old -> new"), to read the sentences around them again.
    """
    lines, changes = text.splitlines(keepends=True), []
    for i, line in enumerate(lines):
        for match in reversed(list(MARKER.finditer(line))):  # from the right: earlier offsets stay valid
            before = line[:match.start()]
            shown = NUMBER_BEFORE.search(HTML_COMMENT.sub(lambda m: " " * len(m.group(0)), before))
            results = load_results(match.group(1))
            if not shown or results is None:
                continue
            try:
                value = lookup(results, match.group(2))
            except MissingValue:
                continue
            number = shown.group("number")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    check_marker(number, value, bool(match.group(3))) is None:
                continue
            measured = value * 100 if match.group(3) else value
            decimals = len(number.split(".")[1]) if "." in number else 0
            new = f"{measured:,.{decimals}f}" if "," in number or abs(measured) >= 10_000 else f"{measured:.{decimals}f}"
            new = "+" + new if number.startswith("+") and measured >= 0 else new
            start, end = shown.span("number")
            line = line[:start] + new + line[end:]
            changes.append(f"{i + 1}: {number} -> {new} ({match.group(1)}:{match.group(2)})")
        lines[i] = line
    return "".join(lines), changes


def fill_todos(text: str, load_results) -> tuple[str, list[str]]:
    """Replace each TODO(measure: RUN:PATH[:%]) that has a measurement by `value <!-- r:... -->`."""
    left = []

    def replace(match):
        body = TODO_BODY.match(match.group(1).strip())
        results = load_results(body.group(1)) if body else None
        try:
            value = lookup(results, body.group(2)) if results is not None else None
        except MissingValue:
            value = None
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            left.append(match.group(0))
            return match.group(0)
        marker = f"r:{body.group(1)}:{body.group(2)}{body.group(3) or ''}"
        return f"{format_measured(value, body.group(2), bool(body.group(3)))} <!-- {marker} -->"

    return TODO.sub(replace, text), left


# ---------------------------------------------------------------------------
# Commands in the docs: scripts, flags and values
# ---------------------------------------------------------------------------
SCRIPT_NAME = re.compile(r"(?<![\w/.-])((?:benchmarks/|tests/)?\d\d_\w+\.py|dl_utils\.py|(?:benchmarks|tests)/\w+\.py)")
PYTHON = re.compile(r"^(?:\S*/)?python(?:\d+(?:\.\d+)?)?$")


def command_lines(text: str) -> list[tuple[int, str]]:
    """Candidate shell lines: every line of a fenced block (joining "\\" continuations) and inline code."""
    lines = []
    prose, code = split_fences(text)
    pending, start = "", 0
    for number, line in code:
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append((start, pending + line))
        pending = ""
    for number, line in prose:
        lines += [(number, span) for _, span in INLINE_CODE.findall(HTML_COMMENT.sub("", line))]
    return lines


def python_commands(line: str) -> list[tuple[str, list[str]]]:
    """(script, arguments) for each `python SCRIPT.py ARGS` in a shell line."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote, e.g. an apostrophe in prose
        tokens = line.split("#")[0].split()
    commands, i = [], 0
    while i < len(tokens):
        if PYTHON.match(tokens[i]) and i + 1 < len(tokens) and tokens[i + 1].endswith(".py"):
            script, args, i = tokens[i + 1], [], i + 2
            while i < len(tokens) and tokens[i] not in ("&&", "||", "|", ";", ">", ">>", "2>&1", "&") \
                    and not tokens[i].startswith("("):  # "python 07_x.py (what it does)" in printed output
                args.append(tokens[i].rstrip(")") if tokens[i].startswith("--") else tokens[i])  # "(... --draw)"
                i += 1
            commands.append((script, args))
        i += 1
    return commands


_PARSERS: dict[str, object] = {}


def script_parser(script: str):
    """The script's argparse parser via build_parser(), else the flags its --help lists."""
    if script in _PARSERS:
        return _PARSERS[script]
    path = REPO / script
    parser = None
    if re.fullmatch(r"\d\d_\w+\.py", script):
        from conftest import lesson_parser

        parser = lesson_parser(path.stem)
    elif (delegate := re.search(r"from course\.(\w+) import main", path.read_text(encoding="utf-8"))) and \
            "build_parser" in (REPO / "course" / f"{delegate.group(1)}.py").read_text(encoding="utf-8"):
        # e.g. `python dl_utils.py` runs course/setup_check.py's main(): its parser, without a process
        parser = importlib.import_module(f"course.{delegate.group(1)}").build_parser()
    elif "build_parser" in path.read_text(encoding="utf-8"):
        spec = importlib.util.spec_from_file_location("docs_" + path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        parser = module.build_parser()
    if parser is None:  # no build_parser(): ask the script itself
        help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                                   cwd=REPO, timeout=60).stdout
        parser = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))
    _PARSERS[script] = parser
    return parser


def check_command(script: str, args: list[str]) -> list[str]:
    """Problems with one documented command: unknown flags, or values the script rejects."""
    parser = script_parser(script)
    known = set(parser._option_string_actions) if isinstance(parser, argparse.ArgumentParser) else parser
    flags = [a.split("=", 1)[0] for a in args if re.match(r"^--?[A-Za-z]", a)]
    problems = [f"{flag} is not a flag of {script} (it accepts {', '.join(sorted(known))})"
                for flag in flags if flag not in known]
    if problems or not isinstance(parser, argparse.ArgumentParser):
        return problems
    rest = [a for a in args if a not in ("-h", "--help")]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(rest)
    except SystemExit:
        problems.append(f"{script} rejects {' '.join(rest)!r}: {stderr.getvalue().strip().splitlines()[-1]}")
    return problems


# ---------------------------------------------------------------------------
# The checks on the real docs
# ---------------------------------------------------------------------------
def existing_docs() -> list[Path]:
    return [REPO / name for name in DOCS if (REPO / name).is_file()]


def doc_id(path: Path) -> str:
    return path.name


@pytest.mark.parametrize("name", REQUIRED_DOCS)
def test_required_docs_exist(name):
    assert (REPO / name).is_file(), f"{name} is missing"


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_links_and_anchors_resolve(doc):
    assert check_links(doc) == []


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_named_scripts_exist(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted({name for name in SCRIPT_NAME.findall(text) if not (REPO / name).is_file()})
    assert missing == [], f"{doc.name} names scripts that do not exist: {missing}"


# "`train_epoch` in `dl_utils.py`", "`SimpleNN.forward` in `03_train_mnist.py`", "`dl_utils.train_model`"
NAME_IN_SCRIPT = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`\s+(?:in|from)\s+`(\d\d_\w+\.py|dl_utils\.py)`")
DL_UTILS_NAME = re.compile(r"`dl_utils\.(?!py`)([A-Za-z_][\w.]*)(?:\([^`]*\))?`")
SECTION_OF_SCRIPT = re.compile(r"`(\d\d_\w+\.py)`(?:'s)?,?\s+sections?\s+(\d+)((?:\s*(?:,|and|-|\u2013|to)\s*\d+)*)")


def resolve_name(module, dotted: str) -> bool:
    node = module
    for part in dotted.split("."):
        if not hasattr(node, part):
            return False
        node = getattr(node, part)
    return True


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_named_functions_and_sections_exist(doc):
    """`X` in `03_train_mnist.py`, `dl_utils.X` and "`03_train_mnist.py` section 4" point at real code."""
    import dl_utils
    from conftest import load_script

    text = doc.read_text(encoding="utf-8")
    problems = []
    for name, script in NAME_IN_SCRIPT.findall(text):
        if not (REPO / script).is_file():
            continue  # reported by test_named_scripts_exist
        module = dl_utils if script == "dl_utils.py" else load_script(script[:-3])
        if name.endswith(".py") or name.startswith("--"):
            continue
        if not resolve_name(module, name):
            problems.append(f"`{name}` is not defined in {script}")
    for name in DL_UTILS_NAME.findall(text):
        if not resolve_name(dl_utils, name):
            problems.append(f"dl_utils has no {name}")
    for script, first, more in SECTION_OF_SCRIPT.findall(text):
        if not (REPO / script).is_file():
            continue
        source = (REPO / script).read_text(encoding="utf-8")
        for number in [first] + re.findall(r"\d+", more):
            if not re.search(rf"^\s*#(?: -+)? {number}\. \S", source, re.M):  # "# 4. ..." or "# --- 4. ..."
                problems.append(f"{script} has no section {number} (a '# {number}. ...' comment)")
    assert problems == []


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_documented_commands_use_real_flags(doc):
    problems = []
    for number, line in command_lines(doc.read_text(encoding="utf-8")):
        for script, args in python_commands(line):
            if not (REPO / script).is_file():
                problems.append(f"{doc.name}:{number}: {script} does not exist")
                continue
            problems += [f"{doc.name}:{number}: {p}" for p in check_command(script, args)]
    assert problems == []


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_measured_numbers_match_committed_results(doc):
    text = doc.read_text(encoding="utf-8")
    entries = load_quoted().get(doc_id(doc), [])
    assert check_markers(text, load_committed, doc.name) + check_quoted(text, entries, load_committed, doc.name) == []


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_results_tables_cite_their_measurements(doc):
    assert unmarked_results(doc.read_text(encoding="utf-8"), doc.name, load_quoted().get(doc_id(doc))) == []


@pytest.mark.parametrize("name", CLEAN_DOCS)
def test_the_docs_a_learner_reads_carry_no_markers(name):
    """Their numbers' sources live in quoted_numbers.json (python tests/test_docs.py --fold moves them)."""
    lines = [number for number, line in enumerate((REPO / name).read_text(encoding="utf-8").splitlines(), 1)
             if MARKER.search(line)]
    assert lines == [], f"{name}: markers on lines {lines}: run python tests/test_docs.py --fold"


def test_fold_moves_markers_out_and_the_check_still_catches_a_wrong_number():
    text = "The MLP reaches 97.67% <!-- r:03_train_mnist:test_accuracy:% -->. It took 9.8 s <!-- r:run:secs -->.\n"
    clean, entries = fold_markers(text)
    assert clean == "The MLP reaches 97.67%. It took 9.8 s.\n"
    assert entries == [["MLP reaches 97.67%", "03_train_mnist:test_accuracy:%"], ["took 9.8 s", "run:secs"]]
    results = {"03_train_mnist": {"test_accuracy": 0.9767}, "run": {"secs": 9.84}}
    assert check_quoted(clean, entries, results.get) == []
    moved = {"03_train_mnist": {"test_accuracy": 0.9712}, "run": {"secs": 9.84}}
    assert "the docs say 97.67" in " ".join(check_quoted(clean, entries, moved.get))
    assert "no longer in" in " ".join(check_quoted(clean.replace("MLP reaches", "MLP got"), entries, results.get))
    refreshed, changes = refresh_quoted(clean, [list(e) for e in entries], moved.get)
    assert "MLP reaches 97.12%." in refreshed and len(changes) == 1


def todos(text: str) -> list[tuple[int, str]]:
    """(line, text) of every "TODO(measure" in a text, well-formed or not."""
    return [(text.count("\n", 0, m.start()) + 1, text[m.start():text.find(")", m.start()) + 1 or None])
            for m in re.finditer(r"TODO\(measure", text)]


def test_todo_placeholders_name_planned_runs():
    """A TODO(measure: RUN:KEY) must be fillable: one line, and RUN is a run benchmarks/run_all.py makes."""
    runs = planned_runs()
    problems = []
    for doc in existing_docs():
        for number, todo in todos(doc.read_text(encoding="utf-8")):
            match = TODO.fullmatch(todo)
            parsed = TODO_BODY.match(match.group(1).strip()) if match and "\n" not in todo else None
            if not parsed:
                problems.append(f"{doc.name}:{number}: {todo!r} is not TODO(measure: RUN:KEY.PATH[:%]) on one line")
            elif parsed.group(1) not in runs:
                problems.append(f"{doc.name}:{number}: run {parsed.group(1)!r} is not in run_all.RUNS")
    assert problems == []


@pytest.mark.xfail(not RESULTS_DIR.is_dir(), reason="results pending: docs/results/ does not exist yet",
                   strict=False)
def test_no_unmeasured_numbers_left():
    left = [f"{doc.name}:{number}: {todo}" for doc in existing_docs()
            for number, todo in todos(doc.read_text(encoding="utf-8"))]
    assert left == [], (f"{len(left)} numbers still wait for a measurement; run benchmarks/run_all.py, then "
                        "python tests/test_docs.py --fill")


@pytest.mark.parametrize("doc", existing_docs(), ids=doc_id)
def test_no_markers_inside_code_blocks(doc):
    """A marker in a code block would be shown as text, and a TODO there would be filled into one."""
    _, code = split_fences(doc.read_text(encoding="utf-8"))
    inside = [f"{doc.name}:{number}" for number, line in code if MARKER.search(line) or "TODO(measure" in line]
    assert inside == [], "measured numbers belong in prose or tables, not in code blocks"


def test_concepts_has_every_section_in_order():
    text = (REPO / CONCEPTS).read_text(encoding="utf-8")
    found = [title for level, title, _ in headings(text) if level == 2]
    missing = [h for h in CONCEPT_HEADINGS if h not in found]
    assert missing == [], f"{CONCEPTS} lacks the sections {missing}"
    order = [title for title in found if title in CONCEPT_HEADINGS]
    assert order == CONCEPT_HEADINGS, "the concept sections are out of order"
    assert github_slug("Epochs, Batches & Iterations") in anchors(text)


def test_each_concept_has_code_and_experiment():
    by_title = sections((REPO / CONCEPTS).read_text(encoding="utf-8"))
    problems = [f"{title}: no '{label}'" for title in CONCEPT_HEADINGS if title in by_title
                for label in ("See it in code", "Try this") if label not in by_title[title]]
    assert problems == []


def test_code_comments_point_at_real_concepts():
    """'"Learning Rate" in ML_CONCEPTS_EXPLAINED.md' in a script must name a heading of that file."""
    text = (REPO / CONCEPTS).read_text(encoding="utf-8")
    titles = {title for _, title, _ in headings(text)}
    slugs = anchors(text)
    problems = []
    for source in sorted(REPO.glob("*.py")) + sorted(REPO.glob("benchmarks/*.py")):
        code = source.read_text(encoding="utf-8")
        for title in re.findall(r"[\"']([^\"'\n]+)[\"'] in " + re.escape(CONCEPTS), code):
            if title not in titles:
                problems.append(f"{source.name}: {title!r} is not a heading of {CONCEPTS}")
        for anchor in re.findall(re.escape(CONCEPTS) + r"#([\w-]+)", code):
            if anchor not in slugs:
                problems.append(f"{source.name}: #{anchor} is not an anchor of {CONCEPTS}")
    assert problems == []


# ---------------------------------------------------------------------------
# The checkers themselves, on hand-written text: each must be able to fail
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("heading, slug", [
    ("Forward & Backward Pass", "forward--backward-pass"),
    ("Epochs, Batches & Iterations", "epochs-batches--iterations"),
    ("Train, Validation & Test Sets", "train-validation--test-sets"),
    ("Vanishing & Exploding Gradients", "vanishing--exploding-gradients"),
    ("What `dl_utils.py` does (and why)", "what-dl_utilspy-does-and-why"),
    ("[Results](README.md): 2-core CPU", "results-2-core-cpu"),
    ("Tensors", "tensors"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_duplicate_headings_get_numbered_anchors_and_code_is_not_a_heading():
    text = "# Try\n## Try\n```bash\n# not a heading\n```\n### Try\n<a id=\"custom\"></a>\n"
    assert anchors(text) == {"try", "try-1", "try-2", "custom"}


def test_link_checker_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Real Heading\n")
    (tmp_path / "pic.png").write_bytes(b"")
    doc = tmp_path / "doc.md"
    doc.write_text("## Here & There\n[ok](other.md#real-heading) ![ok](pic.png) [ok](#here--there)\n"
                   "[web](https://example.com/x) `[code](nowhere.md)`\n"
                   "[bad](missing.md) [bad](other.md#fake) [bad](#nowhere) ![bad](gone.png)\n"
                   "```\n[in code](nope.md)\n```\n")
    problems = check_links(doc)
    assert len(problems) == 4, problems
    assert all(":4:" in p for p in problems)


RESULTS = {
    "03": {"test_accuracy": 0.9767, "train_seconds": 9.849, "parameters": 101770,
           "history": {"val_accuracy": [0.9596, 0.975]},
           "softmax": {"temperatures": {"2.0": [0.5017, 0.3043]}},
           "architectures": [{"name": "TwoLayerNN", "test_accuracy": 0.97712}],
           "ok": True, "date": "2026-11-21"},
}


def fake(run):
    return RESULTS.get(run)


@pytest.mark.parametrize("text", [
    "97.67% <!-- r:03:test_accuracy:% -->",
    "**97.7%** <!-- r:03:test_accuracy:% -->",
    "| about 98% <!-- r:03:test_accuracy:% --> |",
    "~9.8 s <!-- r:03:train_seconds -->",
    "in 10 s<!--r:03:train_seconds-->",
    "101,770 <!-- r:03:parameters -->",
    "97.50% <!-- r:03:history.val_accuracy.-1:% -->",
    "0.50 <!-- r:03:softmax.temperatures.2.0.0 -->",
    "97.71% <!-- r:03:architectures.0.test_accuracy:% -->",
])
def test_marker_check_accepts_the_measured_number(text):
    assert check_markers(text, fake) == []


@pytest.mark.parametrize("text, why", [
    ("97.76% <!-- r:03:test_accuracy:% -->", "the docs say 97.76"),  # a wrong digit
    ("97.68% <!-- r:03:test_accuracy:% -->", "the docs say 97.68"),  # off by one in the last digit
    ("97.67% <!-- r:03:test_accuracy -->", "the docs say 97.67"),  # a fraction shown as % needs :%
    ("9.7 s <!-- r:03:train_seconds -->", "the docs say 9.7"),
    ("101,700 <!-- r:03:parameters -->", "the docs say 101,700"),
    ("97.67% <!-- r:04:test_accuracy:% -->", "no results file"),
    ("97.67% <!-- r:03:val_accuracy:% -->", "has no val_accuracy"),
    ("97.50% <!-- r:03:history.val_accuracy.5:% -->", "no list index"),
    ("accuracy <!-- r:03:test_accuracy:% -->", "no number"),
    ("1 <!-- r:03:ok -->", "not a finite number"),
])
def test_marker_check_rejects_what_was_not_measured(text, why):
    problems = check_markers(text, fake)
    assert len(problems) == 1 and why in problems[0], problems


def test_results_tables_need_markers():
    text = ("## Results\n\n| model | accuracy | time |\n| --- | --- | --- |\n"
            "| MLP | 97.67% <!-- r:03:test_accuracy:% --> | 9.8 s <!-- r:03:train_seconds --> |\n"
            "| CNN | 99.2% | 45 s |\n\n## Elsewhere\n\n| a | 50% |\n")
    problems = unmarked_results(text)
    assert [p.split(": ", 1)[1][:8] for p in problems] == ["'99.2%' ", "'45 s' i"], problems


def test_refresh_rewrites_only_numbers_that_moved():
    results = {"a": {"acc": 0.9812, "n": 60000, "s": 12.34}}
    text = "acc 97.67% <!-- r:a:acc:% -->, n 55,000 <!-- r:a:n -->, s 12.3 s <!-- r:a:s -->\n"
    refreshed, changes = refresh_numbers(text, results.get)
    assert refreshed == "acc 98.12% <!-- r:a:acc:% -->, n 60,000 <!-- r:a:n -->, s 12.3 s <!-- r:a:s -->\n"
    assert len(changes) == 2 and check_markers(refreshed, results.get) == []


def test_fill_replaces_todos_with_marked_numbers():
    text = ("MLP TODO(measure: 03:test_accuracy:%), in TODO(measure: 03:train_seconds), "
            "TODO(measure: 03:parameters) weights; TODO(measure: 99:test_accuracy:%)")
    filled, left = fill_todos(text, fake)
    assert left == ["TODO(measure: 99:test_accuracy:%)"]
    assert filled.startswith("MLP 97.67% <!-- r:03:test_accuracy:% -->, in 9.8 s <!-- r:03:train_seconds -->, "
                             "101,770 <!-- r:03:parameters --> weights")
    assert check_markers(filled.replace(left[0], ""), fake) == []


def test_command_parsing_finds_scripts_flags_and_stops_at_comments():
    assert python_commands("python 03_train_mnist.py --lr 0.01 --dropout=0.2  # try --bogus") == [
        ("03_train_mnist.py", ["--lr", "0.01", "--dropout=0.2"])]
    assert python_commands(". .venv/bin/activate && .venv/bin/python3 01_hello_pytorch.py && python -m pytest") == [
        ("01_hello_pytorch.py", [])]
    text = "```bash\npython 03_train_mnist.py \\\n    --hidden 32\n```\nRun `python 04_load_model.py --help`.\n"
    assert [c for _, line in command_lines(text) for c in python_commands(line)] == [
        ("03_train_mnist.py", ["--hidden", "32"]), ("04_load_model.py", ["--help"])]


def test_flag_check_rejects_unknown_flags_and_bad_values():
    assert check_command("03_train_mnist.py", ["--optimizer", "sgd", "--momentum", "0.9", "--help"]) == []
    assert "--learning-rate is not a flag" in check_command("03_train_mnist.py", ["--learning-rate", "0.1"])[0]
    assert "rejects" in check_command("03_train_mnist.py", ["--optimizer", "rmsprop"])[0]
    assert "rejects" in check_command("03_train_mnist.py", ["--dropout", "1.5"])[0]


# ---------------------------------------------------------------------------
# python tests/test_docs.py --fill: put measured numbers in place of TODOs
# ---------------------------------------------------------------------------
if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Replace TODO(measure: ...) in the docs by measured, marked numbers "
                                              "from docs/results/ (run benchmarks/run_all.py first).")
    cli.add_argument("--fill", action="store_true", help="rewrite the docs (otherwise only list what is left)")
    cli.add_argument("--refresh", action="store_true",
                     help="after a rerun: rewrite every marked number that no longer matches docs/results "
                          "(then reread the sentences it lists)")
    cli.add_argument("--fold", action="store_true",
                     help="move the markers of README, the guide and the concepts page into "
                          "docs/results/quoted_numbers.json (the docs then read clean)")
    options = cli.parse_args()
    if options.fold:
        quoted = load_quoted()
        for name in CLEAN_DOCS:
            clean, entries = fold_markers((REPO / name).read_text(encoding="utf-8"))
            quoted[name] = [e for e in quoted.get(name, []) if e not in entries] + entries
            (REPO / name).write_text(clean, encoding="utf-8")
            print(f"{name}: {len(entries)} markers moved to {QUOTED.relative_to(REPO)}")
        QUOTED.write_text(json.dumps(quoted, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        raise SystemExit(0)
    if options.refresh:
        quoted = load_quoted()
        for doc in existing_docs():
            refreshed, changes = refresh_numbers(doc.read_text(encoding="utf-8"), load_committed)
            refreshed, more = refresh_quoted(refreshed, quoted.get(doc_id(doc), []), load_committed)
            doc.write_text(refreshed, encoding="utf-8")
            print(f"{doc.name}: {len(changes + more)} numbers updated" + "".join(f"\n    {c}" for c in changes + more))
        QUOTED.write_text(json.dumps(quoted, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        raise SystemExit(0)
    for doc in existing_docs():
        original = doc.read_text(encoding="utf-8")
        filled, left = fill_todos(original, load_committed)
        if options.fill and filled != original:
            doc.write_text(filled, encoding="utf-8")
        done = len(TODO.findall(original)) - len(left)
        print(f"{doc.name}: {done} {'filled' if options.fill else 'fillable'}, {len(left)} without a measurement"
              + "".join(f"\n    {todo}" for todo in left))
