"""cloudgw: mount clouds as one local filesystem through a write-back disk cache."""

__version__ = "0.1.0"
