"""Importable test helpers (`from tests.support.X import ...`) and the scripts tests run by path."""
