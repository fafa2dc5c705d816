"""The pipeline's steps. The training steps log to MLflow through the stack's experiment tracker
when the stack has one, else to a local MLflow store (local_mlflow_dir)."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional, Tuple

import mlflow
import numpy as np
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from zenml import get_step_context, step
from zenml.logger import get_logger

from demo.pipeline import data, model as net

logger = get_logger(__name__)


def local_mlflow_dir() -> Path:
    """The local MLflow store: the same folder the local stack's tracker uses (demo/stacks/local.sh),
    so that `demo/scripts/mlflow_tracking.sh --local` shows every local run."""
    home = Path(os.environ.get("MLOPS_DEMO_HOME", Path.home() / ".mlops-demo"))
    return home / "local" / "artifacts"


@contextmanager
def mlflow_run(experiment: str, run_id: Optional[str] = None):
    """This pipeline run's MLflow run. With an experiment tracker in the stack, ZenML has opened it
    already (one MLflow run per pipeline run); without one, open it in the local store."""
    if mlflow.active_run():
        yield mlflow.active_run()
        return
    folder = local_mlflow_dir()
    folder.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(folder / "mlflow_artifacts").as_uri())
    mlflow.set_experiment(experiment)
    name = None if run_id else get_step_context().pipeline_run.name
    with mlflow.start_run(run_id=run_id, run_name=name) as run:
        yield run


@step
def load_data(path: str, download_url: str, fingerprint: str) -> Tuple[
    Annotated[np.ndarray, "train_images"], Annotated[np.ndarray, "train_labels"],
    Annotated[np.ndarray, "test_images"], Annotated[np.ndarray, "test_labels"],
]:
    """Read the MNIST files. `fingerprint` (the files' hash) is unused here: it is in the cache key."""
    arrays = data.load(Path(path), download_url)
    logger.info("loaded %d training and %d test images from %s",
                len(arrays["train_images"]), len(arrays["test_images"]), path)
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


@step
def validate_data(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                  test_labels: np.ndarray) -> Annotated[int, "num_classes"]:
    classes = data.validate(train_images, train_labels, test_images, test_labels)
    logger.info("data is valid: %d classes, images %s", classes, train_images.shape[1:])
    return classes


# The next steps log to MLflow (and the registry): never cached, a re-run trains again.
@step(enable_cache=False)
def train(train_images: np.ndarray, train_labels: np.ndarray, num_classes: int, hyperparameters: dict,
          experiment: str) -> Tuple[Annotated[nn.Module, "model"], Annotated[str, "mlflow_run_id"]]:
    settings = dict(hyperparameters)
    device = net.pick_device(settings["device"])
    logger.info("training on %s", net.describe(device))
    with mlflow_run(experiment) as run, tempfile.TemporaryDirectory() as events:
        # MLflow autologs a plain PyTorch loop through TensorBoard's SummaryWriter: add_scalar
        # becomes a metric (here one value per epoch: log_every_n_step counts the steps given to
        # add_scalar), add_hparams the run's parameters.
        mlflow.pytorch.autolog(log_models=False, log_every_n_step=1, silent=True)
        writer = SummaryWriter(events)

        def on_epoch(epoch, loss, accuracy):
            logger.info("epoch %d/%d: loss %.4f, accuracy %.4f", epoch + 1, settings["epochs"], loss, accuracy)
            writer.add_scalar("train_loss", loss, epoch)
            writer.add_scalar("train_accuracy", accuracy, epoch)

        model, seconds = net.fit(train_images, train_labels, num_classes, device=device, on_epoch=on_epoch,
                                 **{k: v for k, v in settings.items() if k != "device"})
        writer.add_hparams(settings, {})  # also flushes the epoch metrics to MLflow
        writer.close()
        mlflow.pytorch.autolog(disable=True)
        mlflow.log_params({"device_used": device.type, "train_examples": len(train_images)})
        mlflow.log_metrics({"training_seconds": seconds,
                            "samples_per_second": settings["epochs"] * len(train_images) / seconds})
        logger.info("trained %d epochs in %.1f s on %s", settings["epochs"], seconds, device.type)
        return model, run.info.run_id


@step(enable_cache=False)
def evaluate(model: nn.Module, test_images: np.ndarray, test_labels: np.ndarray, mlflow_run_id: str,
             experiment: str) -> Annotated[float, "accuracy"]:
    accuracy = net.accuracy(model, test_images, test_labels)
    with mlflow_run(experiment, mlflow_run_id):
        mlflow.log_metric("test_accuracy", accuracy)
    logger.info("test accuracy %.4f on %d images", accuracy, len(test_images))
    return accuracy


@step(enable_cache=False)
def register(model: nn.Module, accuracy: float, test_images: np.ndarray, mlflow_run_id: str, experiment: str,
             model_name: str, min_accuracy: float) -> Annotated[Optional[int], "model_version"]:
    """Log the model to the MLflow run; register it only when it is accurate enough."""
    passed = accuracy >= min_accuracy
    with mlflow_run(experiment, mlflow_run_id):
        # MLflow stores the model as a traced graph (pt2), which needs an input example.
        info = mlflow.pytorch.log_model(model.eval(), name="model", input_example=net.to_tensor(test_images[:5]).numpy(),
                                        pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
                                        registered_model_name=model_name if passed else None)
    if not passed:
        logger.warning("not registered: test accuracy %.4f is below min_accuracy %.4f", accuracy, min_accuracy)
        return None
    logger.info("registered %s version %s", model_name, info.registered_model_version)
    return int(info.registered_model_version)
