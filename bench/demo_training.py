"""Demo training benchmark: the MNIST demo's training loop on the CPU, on the shipped sample.

    .venv-demo/bin/python bench/demo_training.py              # hyperparameters of demo/config/train.yaml
    .venv-demo/bin/python bench/demo_training.py --repeat 5 --epochs 10

Times the train step's loop (demo.pipeline.model.fit, what the step spends its time in, without
ZenML's bookkeeping) on the CPU even where there is a GPU. Needs the demo environment (make demo-venv):
started with another Python, it runs itself again with .venv-demo's.
"""
import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_PYTHON = REPO / ".venv-demo" / "bin" / "python"
if importlib.util.find_spec("torch") is None and DEMO_PYTHON.is_file():
    os.execv(DEMO_PYTHON, [str(DEMO_PYTHON), __file__, *sys.argv[1:]])
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from demo.pipeline import config, data, model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "demo/config/train.yaml")
    parser.add_argument("--repeat", type=int, default=3, help="training runs; the median is reported")
    parser.add_argument("--epochs", type=int, help="instead of train.epochs of the configuration")
    args = parser.parse_args()
    settings = config.load(args.config).train.model_dump()
    settings.pop("device")
    if args.epochs:
        settings["epochs"] = args.epochs
    arrays = data.load(REPO / "demo/data/sample")
    images, labels = arrays["train_images"], arrays["train_labels"]
    seconds = []
    for _ in range(args.repeat):
        trained, elapsed = model.fit(images, labels, 10, device=torch.device("cpu"), **settings)
        seconds.append(elapsed)
    median = statistics.median(seconds)
    samples = settings["epochs"] * len(images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {len(images)} training images, "
          f"{settings['epochs']} epochs, batch {settings['batch_size']}")
    print(f"training wall time (median of {args.repeat}):   {median:7.2f} s   (runs: "
          + ", ".join(f"{s:.2f}" for s in seconds) + ")")
    print(f"training throughput:                 {samples / median:7.0f} samples/s")
    print(f"test accuracy of the last model:     {model.accuracy(trained, arrays['test_images'], arrays['test_labels']):7.4f}")


if __name__ == "__main__":
    main()
