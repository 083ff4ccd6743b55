"""``python -m poseshift`` is the same as the ``poseshift`` command."""

from poseshift.cli import main

if __name__ == "__main__":
    main()
