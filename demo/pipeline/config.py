"""The training configuration (demo/config/train.yaml), checked before anything runs."""
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Data(Strict):
    path: str = Field(min_length=1)
    download_url: str


class Train(Strict):
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0, le=1)
    channels: int = Field(ge=1)
    hidden: int = Field(ge=1)
    seed: int
    device: Literal["auto", "cpu", "cuda"]


class Register(Strict):
    model_name: str = Field(min_length=1)
    min_accuracy: float = Field(ge=0, le=1)


class Config(Strict):
    experiment: str = Field(min_length=1)
    data: Data
    train: Train
    registry: Register


class ConfigError(ValueError):
    """The configuration cannot be used; the message says why, on one line."""


def load(path: Path) -> Config:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        got = "" if first["type"] == "missing" else f" (got {first['input']!r})"
        raise ConfigError(f"{path}: {where}: {first['msg']}{got}") from error
