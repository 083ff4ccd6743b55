"""poseshift: cross-dataset 3D human pose lifting on one shared, tested base."""

__version__ = "0.1.0"
