"""Bounds on every neuron over an input set: interval (IBP), CROWN and alpha-CROWN, Lipschitz.

Every bound here is padded outward against floating point (one routine, bounds.padding)."""
