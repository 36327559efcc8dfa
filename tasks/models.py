"""Pluggable models: any ``torch.nn.Module`` built by a named factory, the reference MLP by default.

A factory takes the width of the preprocessed input and the task's output width (1 for binary
classification and regression, the number of classes for multiclass) and returns the network::

    def make_my_model(inputs: int, outputs: int, *, depth: int = 3) -> torch.nn.Module: ...

Publish it under the ``lockgate.models`` entry-point group of your package (as datasets are
published under ``lockgate.datasets``) and train with ``TrainingConfig(model="my-model",
model_options={"depth": 4})``::

    [project.entry-points."lockgate.models"]
    my-model = "my_package.models:make_my_model"

A factory may carry its own loss (``factory.loss(problem) -> torch.nn.Module``, summed over the batch)
and extra metrics (``factory.metrics(y_true, outputs) -> dict``). The model card records the factory,
its options and the package that provided it; loading a version whose factory is not installed is
refused, naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import torch
from torch import nn

from infra.errors import ModelFactoryError

ENTRY_POINT_GROUP = "lockgate.models"
ModelFactory = Callable[..., nn.Module]


def make_mlp(
    features: int, outputs: int = 1, *, hidden: tuple[int, ...] = (64, 32), dropout: float = 0.0
) -> nn.Module:
    """The reference model: fully connected layers with ReLU, ``outputs`` logits (or values) out."""
    layers: list[nn.Module] = []
    width = features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


# Factories of this process: the built-in ones, and any registered in code (``register_factory``).
MODEL_FACTORIES: dict[str, ModelFactory] = {"mlp": make_mlp}


@dataclass(frozen=True)
class FactoryInfo:
    """A model factory and where it comes from (recorded in the model card)."""

    name: str
    factory: ModelFactory
    source: str  # "lockgate", "<distribution>==<version>" or "<module>" registered in code


def register_factory(name: str, factory: ModelFactory) -> None:
    """Make ``factory`` available as ``name`` in this process (entry points do it for packages)."""
    MODEL_FACTORIES[name] = factory


def available_factories() -> dict[str, FactoryInfo]:
    """Built-in and registered factories plus those published under ``lockgate.models``."""
    found = {
        name: FactoryInfo(name, factory, "lockgate" if factory is make_mlp else factory.__module__)
        for name, factory in MODEL_FACTORIES.items()
    }
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            continue
        dist = entry.dist
        source = f"{dist.name}=={dist.version}" if dist is not None else entry.value
        found[entry.name] = FactoryInfo(entry.name, _LazyEntry(entry), source)
    return found


class _LazyEntry:
    """An entry point loaded on first use (listing factories imports nothing)."""

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self._loaded: ModelFactory | None = None

    def load(self) -> ModelFactory:
        if self._loaded is None:
            loaded = self.entry.load()
            if not callable(loaded):
                raise ModelFactoryError(
                    f"entry point {self.entry.name!r} ({self.entry.value}) of {ENTRY_POINT_GROUP!r} is not "
                    "callable: publish a function (inputs, outputs, **options) -> torch.nn.Module"
                )
            self._loaded = loaded
        return self._loaded

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        return self.load()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


def find_factory(name: str) -> FactoryInfo:
    """The factory ``name``, or ``ModelFactoryError`` naming it and the installed ones."""
    found = available_factories()
    if name not in found:
        raise ModelFactoryError(
            f"model factory {name!r} is not installed; installed: {', '.join(sorted(found))} (install the "
            f"package that publishes it under the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    return found[name]


def build_model(name: str, features: int, outputs: int = 1, **options: Any) -> nn.Module:
    """Instantiate factory ``name`` for ``features`` inputs and ``outputs`` outputs, and check its shape.

    Raises:
        ModelFactoryError: the factory is not installed, fails on these options, does not return a
            ``torch.nn.Module``, or its output for a batch of two rows is not ``(2, outputs)``.
    """
    info = find_factory(name)
    try:
        network = info.factory(features, outputs=outputs, **options)
    except TypeError as error:
        raise ModelFactoryError(f"model factory {name!r} refused its options {options}: {error}") from error
    if not isinstance(network, nn.Module):
        raise ModelFactoryError(
            f"model factory {name!r} returned {type(network).__name__}, not a torch.nn.Module"
        )
    check_output_width(network, name, features, outputs)
    return network


def check_output_width(network: nn.Module, name: str, features: int, outputs: int) -> None:
    """Refuse a network whose output for two rows is not ``(2, outputs)`` (before training starts)."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(torch.zeros(2, features))
    except Exception as error:
        raise ModelFactoryError(
            f"model {name!r} fails on a batch of 2 rows of {features} inputs: {type(error).__name__}: {error}"
        ) from error
    finally:
        network.train(was_training)
    if tuple(out.shape) != (2, outputs):
        raise ModelFactoryError(
            f"model {name!r} outputs shape {tuple(out.shape)} for 2 rows; the task needs (2, {outputs}) "
            f"({outputs} output(s) per row)"
        )


def factory_loss(name: str, problem: Any) -> nn.Module | None:
    """The factory's own loss for ``problem``, if it declares one (``factory.loss``)."""
    own = getattr(find_factory(name).factory, "loss", None)
    return own(problem) if callable(own) else None


def factory_metrics(name: str, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
    """The factory's own metrics, if it declares any (``factory.metrics``)."""
    own = getattr(find_factory(name).factory, "metrics", None)
    return dict(own(y_true, outputs)) if callable(own) else {}


def model_options(
    config_model: str, hidden: list[int] | tuple[int, ...], options: dict[str, Any]
) -> dict[str, Any]:
    """The options a factory is called with: ``hidden`` for the reference MLP, plus ``options``."""
    return {"hidden": tuple(hidden), **options} if config_model == "mlp" else dict(options)


def predict_logits(model: nn.Module, inputs: np.ndarray, *, batch_size: int = 65_536) -> torch.Tensor:
    """The network's raw outputs for a float32 input matrix, in batches."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outputs.append(model(torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))))
    return torch.cat(outputs) if outputs else torch.zeros((0, 1))


def predict_proba(model: nn.Module, inputs: np.ndarray, *, batch_size: int = 65_536) -> np.ndarray:
    """Probabilities of the positive class of a binary classifier for a float32 input matrix."""
    logits = predict_logits(model, inputs, batch_size=batch_size)
    return torch.sigmoid(logits).squeeze(1).numpy() if len(logits) else np.zeros(0, dtype=np.float32)
