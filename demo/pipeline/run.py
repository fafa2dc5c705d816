"""Run the MNIST pipeline on the active ZenML stack and say where its results are.

    python -m demo.pipeline.run --config demo/config/train.yaml --data demo/data/sample
"""
import logging
import os
from pathlib import Path

import click

from demo.pipeline import config as configuration, data

REPO = Path(__file__).resolve().parents[2]

# Two messages of ZenML's that a student reads as errors, dropped (logger name: what it says):
NOISE = {
    # MLflow 3 no longer has mlflow.fastai; nothing here uses fastai, so nothing was left autologging.
    "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker":
        "Failed to disable MLflow autologging for the following frameworks: ['fastai']",
    # Said when there is no dashboard (the local scenario); `zenml login --local` needs a ZenML server
    # installed, which the demo environment is not meant to have: mlflow_tracking.sh --local shows the runs.
    "zenml.pipelines.pipeline_definition": "`zenml login --local`",
}


def quiet_noise():
    for name, text in NOISE.items():
        logging.getLogger(name).addFilter(lambda record, text=text: text not in record.getMessage())


@click.command(help=__doc__.splitlines()[0])
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=REPO / "demo/config/train.yaml",
              show_default=True, help="The training configuration (YAML).")
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="Folder of the four MNIST .gz files [default: data.path of the config].")
def main(config_path: Path, data_path: Path) -> None:
    try:
        config = configuration.load(config_path)
    except configuration.ConfigError as error:
        raise click.ClickException(str(error)) from None
    folder = (data_path or Path(config.data.path)).resolve()
    missing = data.missing_files(folder)
    if missing and not config.data.download_url:
        raise click.ClickException(f"{folder}: no MNIST files there ({', '.join(missing)} missing); "
                                   "give --data FOLDER or data.download_url in the config")

    if config.train.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise click.ClickException(f"{config_path}: train.device is cuda, but torch sees no GPU here")

    # ZenML is imported only now: it is slow to import, and the checks above need none of it.
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.utils import source_utils

    from demo.pipeline.pipeline import mnist_training

    source_utils.set_custom_source_root(str(REPO))  # steps are demo.pipeline.steps, wherever we run from
    quiet_noise()
    client = Client()
    # In CI the client is the student's service account: name things after the student (STACK_USER).
    user = os.environ.get("STACK_USER") or client.active_user.name
    stack = client.active_stack_model.name
    if os.environ.get("STACK_USER") and stack != user:
        # A credentials file loaded by hand signs the client in, but leaves the server's shared stack active.
        raise click.ClickException(
            f"the active ZenML stack is '{stack}', not yours ('{user}'): run through demo/stacks/hybrid.sh "
            f"with your credentials file (in CI: zenml stack set {user})")
    tracked = bool(client.active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER))
    experiment = config.experiment.format(user=user)
    model_name = config.registry.model_name.format(user=user)
    pipeline = mnist_training
    if tracked:
        pipeline = mnist_training.with_options(settings={"experiment_tracker": {"experiment_name": experiment}})
    try:
        run = pipeline(
            data_path=str(folder), download_url=config.data.download_url,
            fingerprint=f"download:{config.data.download_url}" if missing else data.fingerprint(folder),
            hyperparameters=config.train.model_dump(), experiment=experiment, model_name=model_name,
            min_accuracy=config.registry.min_accuracy, tracked=tracked)
    except data.DataError as error:  # raised in a step, passed on by the orchestrator (FAIL_FAST)
        raise click.ClickException(str(error)) from None

    run = client.get_pipeline_run(run.id)
    steps = run.steps
    accuracy = steps["evaluate"].outputs["accuracy"][0].load()
    version = steps["register"].outputs["model_version"][0].load()
    click.echo(f"ZenML run: {run.name} (id {run.id}) on stack {stack}, "
               f"status {run.status.value}")
    click.echo(f"MLflow run: {steps['train'].outputs['mlflow_run_id'][0].load()} in experiment {experiment}")
    click.echo(f"test accuracy: {accuracy:.4f}")
    click.echo(f"registered model: {model_name} version {version}" if version else
               f"registered model: none (accuracy below {config.registry.min_accuracy})")


if __name__ == "__main__":
    main()
