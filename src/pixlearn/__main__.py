"""``python -m pixlearn`` (the ``pixlearn`` command), e.g. under ``torchrun ... -m pixlearn train ...``."""

import sys

from pixlearn.cli import main

if __name__ == "__main__":
    sys.exit(main())
