"""Builds the optional C accelerator of metric spelling (``t9k_em_core/_interleave.c``); where no
C compiler is present the install goes on without it (``t9k_em_core.metrics`` has the same step in
Python). Everything else about the distribution is in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(ext_modules=[Extension('t9k_em_core._interleave', ['t9k_em_core/_interleave.c'],
                             optional=True)])
