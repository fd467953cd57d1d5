"""Metrics over many points or instances: exact radii (pointwise robustness), Bastani metrics,
local robustness, validation of incomplete methods, audits of other tools, benchmark runs."""
