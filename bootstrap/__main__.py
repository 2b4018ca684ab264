"""`python -m bootstrap <command> --stack <name>`: the command tree lives in bootstrap/cli/main.py."""

import sys

from bootstrap import tune_collector

tune_collector()  # before the imports below: they are what the collector would walk

from bootstrap.cli.main import main  # noqa: E402

sys.exit(main())
