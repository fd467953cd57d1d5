"""CLI subcommands beyond verify/bench/info: one module each, with `register(subparsers)`.

A module's `register` adds its parser and sets `run=<function(args) -> exit code>`;
`exactverify.cli.main` handles InputError (exit 2, one line) for all of them.
Helpers shared by commands (atomic writes) are in exactverify.cli.
"""
