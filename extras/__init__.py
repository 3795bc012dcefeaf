"""Side experiments moved out of the lessons: one file per experiment, each saying which lesson points to it.

This file makes `extras` a regular package, so `from extras import draw` finds this folder even where an
unrelated package of the same name is installed.
"""
