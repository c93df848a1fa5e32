"""``python -m edgepose.cli``: the ``edgepose`` command."""
import sys

from edgepose.cli import main

sys.exit(main())
