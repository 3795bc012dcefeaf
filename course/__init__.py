"""The course's plumbing and self-contained subsystems, out of the learner's way.

The lessons use these modules through dl_utils (which re-exports every name a
lesson calls, so `dl_utils.X` keeps working); a learner need not read them to
follow the course. They are plain Python, though, for anyone curious how a
phone photo becomes an MNIST digit (own_digit.py) or what `python dl_utils.py`
checks (setup_check.py).
"""
