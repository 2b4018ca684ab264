"""`python -m bootstrap <command> --stack <name>`: the command tree lives in bootstrap/cli/main.py."""

import sys

from bootstrap.cli.main import main

sys.exit(main())
