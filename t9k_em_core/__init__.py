"""The framework-free core of t9k-em: Runs, Artifacts, metrics, hyperparameters, upload."""

__version__ = '0.1.0'
