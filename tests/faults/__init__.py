"""Fault injection on the real stack: a load driver, fault injectors and a reconciliation."""
