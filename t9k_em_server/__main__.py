"""``python -m t9k_em_server …`` = ``em server …``."""
import sys

from .cli import main

sys.exit(main())
