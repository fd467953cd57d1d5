"""The core: the network IR, properties, results, counterexample re-checks and errors.

Everything else builds on these; they import nothing of exactverify outside core/."""
