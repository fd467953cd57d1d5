"""Encodings: the exact problem as a big-M MILP (milp.py) or an SMT formula over the reals (smt.py),
and writers to LP/MPS/SMT-LIB files (writers.py) for any solver a user trusts."""
