"""`python -m bootstrap <command> --stack <name>`: the command tree lives in bootstrap/cli/main.py."""

import atexit
import gc
import sys

# One command per process, over ~1,000 SDK modules that live until it ends: the cyclic collector's
# default pace walked that heap again and again during the imports, and once more at exit, about a
# third of `plan`'s CPU (benchmarks/plan_time.py). Collect less often, and skip the final walk:
# what is still alive at exit is freed with the process.
gc.set_threshold(10_000, 10, 10)
atexit.register(gc.freeze)

from bootstrap.cli.main import main  # noqa: E402 (after the collector is tuned: the imports are what it walks)

sys.exit(main())
