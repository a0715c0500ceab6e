"""The test suite, laid out like the package; shared helpers live in `tests.support`."""
