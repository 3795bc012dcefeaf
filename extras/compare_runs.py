"""Reading your experiment log: which runs were best, and how did one setting move the accuracy?

05_experiment_architectures.py points here: with `--compare-runs SETTING`
it calls `run` below instead of training anything. Every training run of
03, 05 and 06 adds a row to experiments.csv (dl_utils.log_experiment);
after an afternoon of "change one thing, rerun", this answers the two
questions that matter, and judges each value of the setting against the
seed noise by the claims ledger's rule (docs/results/what_mattered.md).
The ranking uses VALIDATION accuracy: choosing by test accuracy would tune
on the test set (see "Train, Validation & Test Sets" in
ML_CONCEPTS_EXPLAINED.md).

Run it
    python 05_experiment_architectures.py --compare-runs hidden
    python 05_experiment_architectures.py --compare-runs lr --where optimizer=sgd --where epochs=10
    python 05_experiment_architectures.py --compare-runs arch --where script=05_experiment_architectures

Writes runs_by_<SETTING>.png and compare_runs.json (it needs no MNIST).

Runs of different lessons are never mixed: a 03 run and a 06 run with the
same lr differ in everything else. The lesson with the most runs that have
SETTING is compared; the others are named, with the --where that picks them.
Every --where must hold (they combine with AND), and the table is kept
within 100 columns, the width of a terminal.

Why a file of its own: it trains nothing and reads a file the lessons
write; in 05 it sat between the comparison and its main(). The reading,
ranking and plotting helpers are in course/lab_notebook.py (as dl_utils.X).
It uses dl_utils and libraries, never a lesson.
"""

import argparse
import textwrap

import dl_utils

TOP = 10  # the best runs listed: enough to see a pattern, short enough for a screen
WIDTH = 100  # characters per printed line: a terminal's width


def setting_value(text: str) -> tuple[str, str]:
    """argparse type: "optimizer=adam" -> ("optimizer", "adam")."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"write SETTING=VALUE, e.g. optimizer=adam, got {text!r}")
    return name.strip(), value.strip()


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--compare-runs: read your experiment log (extras/compare_runs.py)")
    group.add_argument("--compare-runs", metavar="SETTING", default=None,
                       help="train nothing: read <out-dir>/experiments.csv, print the best runs and plot accuracy "
                            "against this setting (a column of the log, e.g. lr, hidden, optimizer, arch)")
    group.add_argument("--where", nargs="+", action="extend", type=setting_value, default=[],
                       metavar="SETTING=VALUE",
                       help="keep only the runs with these settings, e.g. --where optimizer=adam dropout=0 or "
                            "--where optimizer=adam --where dropout=0: a run must match all of them")
    group.add_argument("--top", type=dl_utils.positive_int, default=TOP, help="how many of the best runs to list")


def say(text: str) -> None:
    """Print a paragraph wrapped to WIDTH columns, never between --where and its SETTING=VALUE."""
    print(textwrap.fill(text.replace("--where ", "--where\0"), WIDTH, subsequent_indent="  ").replace("\0", " "))


def pick_one_lesson(runs: list[dict]) -> tuple[str, dict]:
    """The script with the most runs (a tie: the one run last), and {other script: its number of runs}."""
    counts, last = {}, {}
    for index, run in enumerate(runs):  # oldest first, as logged
        counts[run["script"]] = counts.get(run["script"], 0) + 1
        last[run["script"]] = index
    script = max(counts, key=lambda name: (counts[name], last[name]))
    return script, {name: n for name, n in counts.items() if name != script}


def run(args) -> dict:
    """Print the best runs in experiments.csv and plot accuracy against args.compare_runs."""
    setting = args.compare_runs
    log_path = args.out_dir / "experiments.csv"
    all_runs = dl_utils.read_experiments(log_path)
    where_text = " ".join(f"{key}={value}" for key, value in args.where)
    runs = dl_utils.filter_runs(all_runs, args.where)  # every --where must hold
    if not runs:
        raise dl_utils.CourseError(f"None of the {len(all_runs)} runs in {log_path} has {where_text}. "
                                   "Check the spelling of the values against the file (e.g. lr=0.001, "
                                   "batch_norm=True), or drop a --where.")
    having = [run for run in runs if run.get(setting) is not None]
    if not having:
        settings = [c for c in dict.fromkeys(c for run in runs for c in run) if c not in dl_utils.RESULT_COLUMNS]
        raise dl_utils.CourseError(f"--compare-runs {setting}: none of these runs has a setting called {setting!r}. "
                                   f"Their settings are: {', '.join(settings)}.")
    script, others = pick_one_lesson(having)
    runs = [run for run in having if run["script"] == script]
    say(f"{len(runs)} runs of {script} in {log_path} have a {setting!r} setting"
        + (f" and match {where_text}" if where_text else "") + f" ({len(all_runs)} runs in the log)")
    if others:
        say("Runs of different lessons are compared apart, never mixed. Also in the log: "
            + ", ".join(f"{name} ({n} run{'s' if n > 1 else ''})" for name, n in others.items())
            + f"; add --where script={next(iter(others))} to compare those.")

    # The best runs. Only the settings that differ between them get a
    # column; the ones they share are printed once, below the table.
    best = dl_utils.best_runs(runs, k=args.top)
    shown, shared = dl_utils.varying_settings(best)
    if setting in shown:  # the setting you asked about comes first
        shown = [setting] + [key for key in shown if key != setting]
    dl_utils.step(f"1. The {len(best)} best runs of {script}, by validation accuracy")
    print("(the test column is for reporting, not for choosing)")
    print(dl_utils.format_runs_table(best, shown, width=WIDTH))
    shared = {key: value for key, value in shared.items() if value is not None}
    if shared:
        say("Same in all of these: " + ", ".join(f"{key}={value}" for key, value in shared.items()))

    # Accuracy against the chosen setting: the best and the mean run at each value.
    by_value = dl_utils.accuracy_by_value(runs, setting)
    dl_utils.step(f"2. Validation accuracy by {setting}")
    which = "last" if dl_utils.accuracy_key(runs) == "final_val_accuracy" else "best"
    say(f"(the {which} epoch's validation accuracy: the best run and the mean of the runs at each value; "
        "other settings may differ too)")
    pad = max(len(f"{setting}={row['value']}") for row in by_value)  # one column, however long the values
    for row in by_value:
        print(f"  {setting + '=' + str(row['value']):<{pad}}   best {100 * row['best']:6.2f}%   "
              f"mean {100 * row['mean']:6.2f}%   {row['runs']} run{'s' if row['runs'] > 1 else ''}")
    # A difference is the setting's doing only if nothing else changed (the seed aside).
    varying, _ = dl_utils.varying_settings(runs)
    changed = [key for key in varying if key not in (setting, "seed")]
    if changed:
        say(f"Careful: {', '.join(changed)} also changed between these runs, so not every difference above is "
            f"{setting}'s doing. Hold them fixed with --where, e.g. --where {changed[0]}={runs[0].get(changed[0])}")

    # The claims ledger's rule, on your runs: each value against the one with the most runs (its seeds).
    effects = dl_utils.effects_against_noise(runs, setting)
    dl_utils.step(f"3. Each {setting} against {setting}={effects['reference']}, judged against the seed noise")
    if changed:  # the seed noise says nothing about a difference other settings may have made
        say(f"No verdicts: {', '.join(changed)} changed too. Hold them fixed with --where, then only the seed "
            f"varies beside {setting}.")
    else:
        for row in effects["rows"]:
            label = f"{setting}={row['value']}"
            if "verdict" in row:
                print(f"  {label:<{pad}}   {row['effect']:+.2f} +- {row['spread']:.2f} points   {row['verdict']}")
            else:
                print(f"  {label:<{pad}}   {row['effect']:+.2f} points   no spread: run 3 seeds of each (--seed 0 1 2)")
        say(f"(the {which} epoch's validation accuracy, in points; 'effect' when the difference is more than twice "
            "its standard error: the rule of docs/results/what_mattered.md)")

    plot_path = dl_utils.plot_runs_against(
        runs, setting, args.out_dir / f"runs_by_{setting}.png", show=args.show,
        title=f"{len(runs)} runs of {script}" + (f" ({where_text})" if where_text else "")
              + f":\nvalidation accuracy against {setting}")
    results = {"script": "05_experiment_architectures", "mode": "compare_runs", "setting": setting,
               "where": [f"{key}={value}" for key, value in args.where], "compared_script": script,
               "other_scripts": others, "runs": len(runs), "runs_in_log": len(all_runs),
               "varying": varying, "best": best, "by_value": by_value, "effects": effects}
    dl_utils.save_results(args.out_dir, "compare_runs", results)
    print(f"\nSaved {plot_path.name} and compare_runs.json in {args.out_dir}")
    return results
