"""The student's side of the MLOps stack: an MNIST training pipeline run locally, hybrid or remote."""
