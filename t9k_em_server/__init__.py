"""The t9k-em tracking server (``em server``): AIStore API of t9k 0.6.0b0 plus a web UI."""

__version__ = "0.1.0"
