"""Dose-escalation designs for phase I cell-therapy programmes, one module each.

``core`` (what every design shares: per-level state, decisions, pending patients, the
sample-size cap), ``three_plus_three`` (classic 3+3 as a table), ``boin`` (BOIN boundaries,
decision table, elimination), ``isotonic`` (isotonic regression and MTD selection) and
``records`` (per-patient DLT records to per-level state).
"""
