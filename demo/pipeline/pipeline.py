"""The MNIST training pipeline: load -> validate -> train -> evaluate -> register."""
from zenml import pipeline
from zenml.enums import ExecutionMode

from demo.pipeline.steps import evaluate, load_data, register, train, validate_data


# FAIL_FAST: a failed step stops the run and its own error reaches the caller.
@pipeline(name="mnist_training", enable_cache=True, execution_mode=ExecutionMode.FAIL_FAST)
def mnist_training(data_path: str, download_url: str, fingerprint: str, hyperparameters: dict, experiment: str,
                   model_name: str, min_accuracy: float, tracked: bool):
    """`tracked`: the stack has an experiment tracker, which the MLflow steps then use."""
    train_images, train_labels, test_images, test_labels = load_data(data_path, download_url, fingerprint)
    num_classes = validate_data(train_images, train_labels, test_images, test_labels)
    model, mlflow_run_id = train.with_options(experiment_tracker=tracked)(
        train_images, train_labels, num_classes, hyperparameters, experiment)
    accuracy = evaluate.with_options(experiment_tracker=tracked)(
        model, test_images, test_labels, mlflow_run_id, experiment)
    register.with_options(experiment_tracker=tracked)(
        model, accuracy, test_images, mlflow_run_id, experiment, model_name, min_accuracy)
