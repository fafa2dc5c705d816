"""The network and its training loop, plain PyTorch (no ZenML, no MLflow in here)."""
import time

import numpy as np
import torch
from torch import nn


class MnistCNN(nn.Module):
    """Two 3x3 convolutions with pooling (28 -> 14 -> 7), then two dense layers."""

    def __init__(self, num_classes: int = 10, channels: int = 16, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * channels * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.layers(x)


def pick_device(wanted: str = "auto") -> torch.device:
    """CUDA when there is a GPU (or when asked for), else the CPU."""
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for, but torch sees no GPU")
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def describe(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float tensor (N, 1, 28, 28) in 0..1."""
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def fit(images, labels, num_classes, *, epochs, batch_size, learning_rate, channels, hidden, seed,
        device, on_epoch=None):
    """Train a fresh MnistCNN with Adam; on_epoch(epoch, loss, accuracy) after each epoch.

    Returns the model (on the CPU) and the seconds spent in the loop.
    """
    torch.manual_seed(seed)
    model = MnistCNN(num_classes, channels, hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    x, y = to_tensor(images).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)
    order = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total_loss, correct = 0.0, 0
        for batch in torch.randperm(len(x), generator=order).split(batch_size):
            batch = batch.to(device)
            optimizer.zero_grad()
            out = model(x[batch])
            loss = nn.functional.cross_entropy(out, y[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (out.argmax(1) == y[batch]).sum().item()
        loss, accuracy = total_loss / len(x), correct / len(x)
        if on_epoch:
            on_epoch(epoch, loss, accuracy)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return model.cpu(), time.perf_counter() - start


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    predicted = model(to_tensor(images)).argmax(1).numpy()
    return float((predicted == labels).mean())
