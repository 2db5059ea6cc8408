"""``python -m recllm [options] <command> ...``: the same as the ``recllm`` command (e.g. where the virtual
environment's scripts folder is not on PATH)."""

import sys

from recllm.cli import main

if __name__ == "__main__":
    sys.exit(main())
