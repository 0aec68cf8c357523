"""``python -m nasforge``: the same command line as the ``nasforge`` script."""

import sys

from nasforge.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
