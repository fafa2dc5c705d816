"""The MLOps stack's shared Python for the tests and benchmarks (installed editable: `pip install -e .`)."""
