"""The version of modelport: the one definition (pyproject.toml and modelport.__version__ read it)."""

__version__ = "0.1.0"
