"""The Remote contract suite, run over every remote (see conftest.py)."""
