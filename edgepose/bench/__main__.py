"""``python -m edgepose.bench``: the ``edgepose-bench`` command."""
import sys

from edgepose.bench.cli import main

sys.exit(main())
