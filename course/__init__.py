"""Plumbing the lessons use; a learner need not read it.

dl_utils.py is the toolbox a learner reads after 03: data, the loop, evaluation,
checkpoints and plots. What lives here is the machinery around it; dl_utils
re-exports every name a lesson calls, so lessons write `dl_utils.X`. The
arrows point one way: dl_utils imports course/, course/ never imports dl_utils
or a lesson (tests/test_toolbox.py checks it).

    cli.py          settings -> flags, their checks, devices, data folders, clear errors, Ctrl-C (`run`)
    records.py      results JSON, the experiments.csv log, the machine a run used, saving figures
    lab_notebook.py reading experiments.csv back (05 --compare-runs)
    own_digit.py    any photo of a digit -> MNIST's 28x28 (04 --image, 06 --image)
    setup_check.py  `python dl_utils.py`: is everything a lesson needs in place?
"""
