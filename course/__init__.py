"""Plumbing and self-contained subsystems the lessons use; a learner need not read them.

dl_utils.py is the toolbox a learner reads after 03: data, the loop, evaluation,
checkpoints and plots. What lives here is the machinery around it, and
dl_utils re-exports every name a lesson calls, so lessons write `dl_utils.X`:

    cli.py          the shared flags and their checks, Ctrl-C and clear errors (`run`)
    records.py      results JSON, the experiments.csv log, the machine a run used
    lab_notebook.py reading experiments.csv back (05 --compare-runs)
    own_digit.py    any photo of a digit -> MNIST's 28x28 (04 --image, 06 --image)
    setup_check.py  `python dl_utils.py`: is everything a lesson needs in place?
"""
