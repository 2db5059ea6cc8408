"""``python -m recllm.bench <name> [options]``: the same as ``recllm bench <name> [options]``."""

import sys

from recllm.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "--help", sys.argv[2:]))
