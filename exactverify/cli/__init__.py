"""The command line: `exactverify COMMAND`, one module per command.

app.py parses and dispatches; options.py defines the options that several commands share.
"""
