"""The claims ledger (docs/results/claims.json) and the docs that cite it.

Both directions:
  * every entry follows from its runs: recomputed from claims_runs.json by
    the rule stated once in benchmarks/claims.py, with the lr of a method
    chosen on validation, and its verdict from its own numbers;
  * every entry isolates one cause (its two commands differ in one flag, or
    only in the lr where each condition got its own);
  * the docs cite every entry, every citation names an entry, and a
    paragraph that states a verdict ("helps", "no difference", ...) cites one.
Fast: reads JSON and markdown only.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import claims  # noqa: E402  (benchmarks/claims.py)
from test_docs import split_fences  # noqa: E402

RESULTS = REPO / "docs" / "results"
LEDGER = RESULTS / "claims.json"
DOCS = ["README.md", "LEARNING_GUIDE.md", "ML_CONCEPTS_EXPLAINED.md", "docs/PERFORMANCE.md"]
CITATION = re.compile(r"what_mattered\.md#([\w-]+)")
# Words that state a verdict about an experiment. A paragraph holding one must cite the ledger.
VERDICT = re.compile(r"\b(helps?|helped|hurts?|hurt|no (?:measurable |real )?difference|makes? no difference|"
                     r"within (?:the )?(?:seed )?noise|beyond (?:the )?(?:seed )?noise|beats?|outperform\w*|"
                     r"did the work|mattered|worse than|better than)\b", re.I)
# Comparisons that are not experiment verdicts (against chance, or defining a word).
# A verdict word in quotes is being defined, not stated ("within noise"); --help and "help text" are the flag.
NOT_A_VERDICT = re.compile(r"better than (?:chance|guessing|10%|random)|worse than (?:chance|guessing)|"
                           r"what[ -]mattered|\"[^\"]{1,40}\"|--help|help text", re.I)


def ledger() -> list[dict]:
    return json.loads(LEDGER.read_text())["claims"]


def stored_runs() -> dict:
    return json.loads((RESULTS / "claims_runs.json").read_text())["runs"]


def test_the_ledger_holds_at_least_15_claims_each_on_3_seeds_and_validation():
    entries = ledger()
    assert len(entries) >= 15
    for e in entries:
        for key in ("claim", "runs", "seeds", "split", "effect", "spread", "verdict"):
            assert key in e, f"{e['id']}: no {key}"
        assert e["split"] == "validation"
        assert all((RESULTS / run).is_file() for run in e["runs"])
        for side in ("reference", "changed"):
            assert len(e[side]["val_accuracy_per_seed"]) >= 3 and len(set(e[side]["seeds"])) >= 3


def test_every_entry_follows_from_its_runs():
    """Rebuilt from claims_runs.json by benchmarks/claims.py, the ledger is the same, number for number."""
    rebuilt = {e["id"]: e for e in claims.build_ledger(stored_runs())}
    for e in ledger():
        assert rebuilt[e["id"]] == e, f"{e['id']}: claims.json differs from its runs; rerun claims.py --ledger"


def test_every_verdict_follows_from_its_own_numbers():
    """The rule, recomputed here by hand: |effect| > 2 x the standard error of the difference."""
    for e in ledger():
        a, b = e["reference"]["val_accuracy_per_seed"], e["changed"]["val_accuracy_per_seed"]
        effect = statistics.mean(b) - statistics.mean(a)
        spread = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
        assert abs(effect - e["effect"]) < 0.006 and abs(spread - e["spread"]) < 0.006, e["id"]
        assert e["verdict"] == ("effect" if abs(effect) > 2 * spread else "within noise"), e["id"]


def flags_without_lr(command: str) -> list[str]:
    tokens = command.split()[2:]
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] == "--lr":
            i += 2
            continue
        out.append(tokens[i])
        i += 1
    return out


def test_every_entry_isolates_one_cause():
    """The two commands differ in one flag (and its value); a method's may also differ in the lr."""
    for e in ledger():
        ref, new = e["reference"]["command"], e["changed"]["command"]
        if e["id"] == "cnn_vs_mlp":  # the cause is the model, each with its own lesson's recipe
            assert ref.split()[1] != new.split()[1]
            continue
        assert ref.split()[1] == new.split()[1], e["id"]  # the same lesson
        a, b = flags_without_lr(ref), flags_without_lr(new)
        if e["id"] == "lr_too_high":  # the lr is the one cause: everything else the same
            assert e["reference"]["lr"] != e["changed"]["lr"] and a == b, e["id"]
            continue
        if not e["method"]:
            assert e["reference"]["lr"] == e["changed"]["lr"], e["id"]
        pairs = lambda flags: {tuple(flags[i:i + 2]) for i in range(0, len(flags), 2)}  # noqa: E731
        differ = pairs(a) ^ pairs(b)
        assert 1 <= len({flag for flag, *_ in differ}) <= 1, f"{e['id']}: {differ}"


def test_a_method_gets_its_own_lr_chosen_on_validation_and_measured_on_fresh_seeds():
    for e in ledger():
        if not e["method"]:
            continue
        for side in ("reference", "changed"):
            m = e[side]
            grid = m["lr_chosen_on_validation"]
            assert grid and len(grid) >= 3
            assert m["lr"] == float(max(grid, key=grid.get)), f"{e['id']} {side}: not the grid's best"
            lrs = sorted(grid, key=float)
            assert len(lrs) > claims.MAX_EXTENSIONS + 3 or m["lr"] not in (float(lrs[0]), float(lrs[-1])), \
                f"{e['id']} {side}: the best lr is at the grid's edge; rerun claims.py to grow the grid"
            assert set(m["seeds"]).isdisjoint(claims.SEEDS), f"{e['id']}: measured on the seeds that chose"


def doc_paragraphs(path: Path) -> list[tuple[int, str]]:
    """(first line, text) of each prose paragraph (code blocks left out)."""
    paragraphs, current, start = [], [], 0
    for number, line in split_fences(path.read_text(encoding="utf-8"))[0]:
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            paragraphs.append((start, " ".join(current)))
            current = []
    if current:
        paragraphs.append((start, " ".join(current)))
    return paragraphs


def uncited_verdicts(paragraphs: list[tuple[int, str]], name: str) -> list[str]:
    problems = []
    for number, text in paragraphs:
        found = [m.group(0) for m in VERDICT.finditer(NOT_A_VERDICT.sub("", text))]
        if found and not CITATION.search(text) and not text.lstrip().startswith("#"):
            problems.append(f"{name}:{number}: {found[0]!r} states a verdict without citing the ledger")
    return problems


def citations() -> dict[str, list[str]]:
    cited = {}
    for name in DOCS:
        for number, text in doc_paragraphs(REPO / name):
            for claim_id in CITATION.findall(text):
                cited.setdefault(claim_id, []).append(f"{name}:{number}")
    return cited


def test_every_citation_names_an_entry_and_every_entry_is_cited():
    ids = {e["id"] for e in ledger()}
    cited = citations()
    assert sorted(set(cited) - ids) == [], "citations of no ledger entry"
    assert sorted(ids - set(cited)) == [], "ledger entries no doc cites"


@pytest.mark.parametrize("name", DOCS)
def test_a_paragraph_that_states_a_verdict_cites_the_ledger(name):
    assert uncited_verdicts(doc_paragraphs(REPO / name), name) == []


def test_the_checks_can_fail():
    paragraphs = [(1, "Dropout helps the MLP."), (3, "Dropout hurts ([ledger](what_mattered.md#dropout))."),
                  (5, "It does better than chance.")]
    assert uncited_verdicts(paragraphs, "x") == ["x:1: 'helps' states a verdict without citing the ledger"]
    e = ledger()[0]
    wrong = {**e, "verdict": "within noise" if e["verdict"] == "effect" else "effect"}
    a, b = wrong["reference"]["val_accuracy_per_seed"], wrong["changed"]["val_accuracy_per_seed"]
    effect = statistics.mean(b) - statistics.mean(a)
    spread = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    assert wrong["verdict"] != ("effect" if abs(effect) > 2 * spread else "within noise")
    assert flags_without_lr("python 03_train_mnist.py --hidden 32 --lr 0.001") == ["--hidden", "32"]


QUOTE = re.compile(r"\*\*(within noise|an effect)\*\* \(([+\-]\d+\.\d\d) ± (\d+\.\d\d), "
                   r"\[ledger: ([\w-]+)\]")


def test_quoted_verdicts_and_numbers_are_the_ledgers():
    """Where the docs quote an entry (claims.phrase), its verdict, effect and spread are the entry's."""
    entries = {e["id"]: e for e in ledger()}
    problems = []
    for name in DOCS:
        for number, text in doc_paragraphs(REPO / name):
            for verdict, effect, spread, claim_id in QUOTE.findall(text):
                e = entries.get(claim_id)
                if e is None or (verdict == "within noise") != (e["verdict"] == "within noise") or \
                        float(effect) != e["effect"] or float(spread) != e["spread"]:
                    problems.append(f"{name}:{number}: {claim_id} quoted as {verdict} {effect} ± {spread}")
    assert problems == []


def test_the_guide_shows_the_what_mattered_table_as_the_ledger_ranks_it():
    guide = (REPO / "LEARNING_GUIDE.md").read_text(encoding="utf-8")
    assert claims.compact_table(ledger()) in guide, "rerun benchmarks/claims.py and paste compact_table into the guide"


def test_a_grid_grows_past_an_edge_where_the_best_lies():
    """Runs faked so that accuracy rises as the lr falls: the grid must grow downwards, one step a round."""
    condition = claims.cond("Adam", "03", [], [3e-4, 1e-3, 3e-3])
    runs = {}

    def fake(lr, accuracy):
        for seed in claims.SEEDS:
            runs[claims.run_key("03", claims.with_lr(condition, lr), seed)] = {"val_accuracy": [accuracy]}

    for lr, accuracy in [(3e-4, 0.97), (1e-3, 0.96), (3e-3, 0.95)]:
        fake(lr, accuracy)
    lrs, grid = claims.lr_grid(runs, condition)
    assert lrs == [1e-4, 3e-4, 1e-3, 3e-3] and grid is None  # 1e-4 is still to run
    assert claims.choose_lr(runs, condition) == (None, None)
    fake(1e-4, 0.965)  # lower than 3e-4: the best is inside now
    assert claims.choose_lr(runs, condition)[0] == 3e-4
    assert list(claims.lr_grid(runs, condition)[1]) == ["0.0001", "0.0003", "0.001", "0.003"]


def test_refresh_docs_rewrites_a_quoted_verdict_that_moved(tmp_path):
    """claims.py --docs: the docs as they are need no change; a moved entry is rewritten where it is quoted."""
    for name in claims.DOCS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    entries = ledger()
    assert claims.refresh_docs(entries, tmp_path) == []
    moved = [{**entries[0], "effect": -9.99, "spread": 9.99, "verdict": "within noise"}] + entries[1:]
    changes = claims.refresh_docs(moved, tmp_path)
    assert any("-9.99 ± 9.99" in change for change in changes)  # the table may also reorder its rows
    assert f"**within noise** (-9.99 ± 9.99, [ledger: {entries[0]['id']}]" in \
        (tmp_path / "LEARNING_GUIDE.md").read_text(encoding="utf-8")
