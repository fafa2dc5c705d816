"""MNIST training with ZenML, PyTorch and MLflow: `python -m demo.pipeline.run --help`."""
