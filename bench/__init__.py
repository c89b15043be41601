"""The benchmark suite: `python -m bench`."""
