"""The commands that walk run and sweep directories: measure, robustness, analyze, demo, compare.

They sit above everything they use: the run directory (:mod:`selectivity.runs`), training,
sweeps, the report's figures and the pure analyses of :mod:`selectivity.analysis`. Each is a
library function a notebook can call; :mod:`selectivity.cli` only parses arguments for them.
"""
