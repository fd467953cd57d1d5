"""`python -m exactverify COMMAND ...`: the same command line as the `exactverify` script."""

import sys

from .cli.app import main

sys.exit(main())
