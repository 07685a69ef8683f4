"""``python -m pixlearn.cli``."""

import sys

from pixlearn.cli import main

if __name__ == "__main__":
    sys.exit(main())
