"""Builds the optional C accelerators of ``Run.log`` (``t9k_em_core/_speedups.c``); where no C
compiler is present the install goes on without them (``t9k_em_core.metrics`` has the same functions
in Python). Everything else about the distribution is in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(ext_modules=[Extension('t9k_em_core._speedups', ['t9k_em_core/_speedups.c'],
                             optional=True)])
