"""Loading the model to evaluate: TorchScript, ONNX, or a factory function plus a state dict."""

from __future__ import annotations

import importlib
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from binconv.errors import BinconvError

from .embed import Model

__all__ = ["ModelLoadError", "OnnxModel", "load_model", "resolve_device"]

# `package.module:factory`, where the factory may be a dotted attribute path.
_FACTORY_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

_MODEL_HELP = (
    "pass a TorchScript file, an ONNX file (.onnx), or package.module:factory with "
    "--weights for a state dict"
)


class ModelLoadError(BinconvError):
    """A model that cannot be found, imported or loaded."""


def resolve_device(name: str) -> torch.device:
    """Parse a device name such as `cpu`, `cuda` or `cuda:1` and check that it exists.

    Raises:
        BinconvError: The name is invalid or the device is not available.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BinconvError(f"invalid device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BinconvError(f"device {name!r} requested, but CUDA is not available; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BinconvError(
                f"device {name!r} requested, but there are only "
                f"{torch.cuda.device_count()} CUDA devices"
            )
    return device


def load_model(spec: str, *, weights: str | None = None, device: torch.device) -> Model:
    """Load the model named by `spec` onto `device`.

    Args:
        spec: A TorchScript file, an ONNX file (ending in `.onnx`), or
            `package.module:factory`, a function that builds a `torch.nn.Module`
            when called without arguments. The current folder is searched
            for the package first, as `python -m` would.
        weights: A state dict saved with `torch.save`, for a factory only.
        device: Device to put the model on.

    Raises:
        ModelLoadError: The model cannot be found or loaded, or `weights`
            is given for a model file.
    """
    is_factory = _FACTORY_SPEC.fullmatch(spec) is not None and not Path(spec).exists()
    if weights is not None and not is_factory:
        raise ModelLoadError(
            f"--weights applies to package.module:factory models only, not to the file {spec}"
        )
    if is_factory:
        return _load_factory(spec, weights, device)
    path = Path(spec)
    if not path.is_file():
        raise ModelLoadError(f"model file {spec} not found; {_MODEL_HELP}")
    if path.suffix.lower() == ".onnx":
        return OnnxModel(path, device)
    return _load_torchscript(path, device)


def _load_torchscript(path: Path, device: torch.device) -> Model:
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{path} is not a TorchScript file ({reason}); {_MODEL_HELP}"
        ) from None
    return model


def _load_factory(spec: str, weights: str | None, device: torch.device) -> Model:
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"cannot import {module_name} for model {spec}: {exc}") from None
    for name in attribute.split("."):
        factory = getattr(factory, name, None)
        if factory is None:
            raise ModelLoadError(f"{module_name} has no attribute {attribute} (model {spec})")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{spec} returned {type(model).__name__}, expected a torch.nn.Module")
    if weights is not None:
        _load_weights(model, weights, spec)
    return model.to(device)


def _load_weights(model: torch.nn.Module, weights: str, spec: str) -> None:
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"weights file {weights} not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{weights} is not a state dict that loads with weights_only=True ({reason})"
        ) from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{weights} contains a {type(state).__name__}, expected a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{weights} does not fit the model built by {spec}: {' '.join(str(exc).split())}"
        ) from None


class OnnxModel:
    """An ONNX model run with onnxruntime, called like a PyTorch model.

    It takes a `float32` tensor (N, 3, H, W) on any device and returns the
    first output as a CPU tensor. A model exported with a fixed batch size
    gets its input in chunks of that size, the last one padded.

    Args:
        path: The `.onnx` file.
        device: `cuda` runs on onnxruntime's CUDA provider when installed,
            else on the CPU provider.

    Raises:
        ModelLoadError: onnxruntime is not installed, or the file is not a
            model with one image input.
    """

    def __init__(self, path: Path, device: torch.device) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError(
                f"{path}: ONNX models need onnxruntime; install it with pip install 'binconv[onnx]'"
            ) from None
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind11 exception types
            raise ModelLoadError(f"{path} is not a valid ONNX model ({exc})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [tuple(item.shape) for item in inputs]
            raise ModelLoadError(
                f"{path} has inputs of shapes {shapes}; expected one (N, 3, H, W) image input"
            )
        self.input_name = inputs[0].name
        batch = inputs[0].shape[0]
        self.fixed_batch_size = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().float().cpu().numpy()
        if self.fixed_batch_size is None:
            return torch.from_numpy(self._run(array))
        size = self.fixed_batch_size
        chunks = []
        for start in range(0, len(array), size):
            chunk = array[start : start + size]
            padding = size - len(chunk)
            if padding:
                chunk = np.concatenate([chunk, np.zeros((padding, *chunk.shape[1:]), chunk.dtype)])
            chunks.append(self._run(chunk)[: size - padding])
        return torch.from_numpy(np.concatenate(chunks))

    def _run(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: array})[0])
