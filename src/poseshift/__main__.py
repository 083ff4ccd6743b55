"""``python -m poseshift`` is the same as the ``poseshift`` command."""

import sys

from poseshift.cli import main

if __name__ == "__main__":
    sys.exit(main())
