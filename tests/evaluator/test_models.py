"""Tests for loading TorchScript, ONNX and factory models."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch

from binconv.errors import BinconvError
from evaluator.models import ModelLoadError, OnnxModel, load_model, resolve_device

from .tiny_models import build_tiny_cnn

CPU = torch.device("cpu")
FACTORY = "tests.evaluator.tiny_models:build_tiny_cnn"

# PyTorch 2.13 warns that TorchScript is deprecated, but it is a format the CLI accepts.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(5, 3, 112, 112, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def expected(images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return build_tiny_cnn().eval()(images)


def export_onnx(path: Path, batch_size: int, dynamic: bool) -> Path:
    model = build_tiny_cnn().eval()
    example = torch.randn(batch_size, 3, 112, 112)
    with pytest.warns(DeprecationWarning, match="legacy TorchScript-based ONNX export"):
        # The TorchScript-based exporter needs no onnxscript and works offline.
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_axes={"images": {0: "batch"}} if dynamic else None,
            dynamo=False,
        )
    return path


def test_torchscript_file_loaded(
    tmp_path: Path, images: torch.Tensor, expected: torch.Tensor
) -> None:
    path = tmp_path / "model.pt"
    torch.jit.script(build_tiny_cnn()).save(str(path))
    model = load_model(str(path), device=CPU)
    with torch.inference_mode():
        output = model.eval()(images)  # type: ignore[attr-defined]
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-6)


def test_onnx_file_loaded(tmp_path: Path, images: torch.Tensor, expected: torch.Tensor) -> None:
    path = export_onnx(tmp_path / "model.onnx", batch_size=2, dynamic=True)
    model = load_model(str(path), device=CPU)
    assert isinstance(model, OnnxModel)
    assert model.fixed_batch_size is None
    torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def test_onnx_fixed_batch_run_in_chunks(
    tmp_path: Path, images: torch.Tensor, expected: torch.Tensor
) -> None:
    path = export_onnx(tmp_path / "fixed.onnx", batch_size=2, dynamic=False)
    model = load_model(str(path), device=CPU)
    assert isinstance(model, OnnxModel)
    assert model.fixed_batch_size == 2
    output = model(images)  # 5 images: chunks of 2, 2 and 1 padded to 2
    assert tuple(output.shape) == (5, 16)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)


def test_onnx_without_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"unused")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelLoadError, match=r"pip install 'binconv\[onnx\]'"):
        load_model(str(path), device=CPU)


def test_invalid_onnx_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not protobuf")
    with pytest.raises(ModelLoadError, match=r"broken\.onnx is not a valid ONNX model"):
        load_model(str(path), device=CPU)


def test_factory_with_weights(tmp_path: Path, images: torch.Tensor) -> None:
    trained = build_tiny_cnn()
    with torch.no_grad():
        trained.head.bias.fill_(0.25)
    weights = tmp_path / "weights.pth"
    torch.save(trained.state_dict(), weights)
    model = load_model(FACTORY, weights=str(weights), device=CPU)
    assert isinstance(model, torch.nn.Module)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(images), trained.eval()(images), rtol=0, atol=0)


def test_factory_without_weights(images: torch.Tensor, expected: torch.Tensor) -> None:
    model = load_model(FACTORY, device=CPU)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(images), expected, rtol=0, atol=0)  # type: ignore[attr-defined]


def test_weights_of_another_model_rejected(tmp_path: Path) -> None:
    weights = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), weights)
    with pytest.raises(ModelLoadError, match="does not fit the model built by"):
        load_model(FACTORY, weights=str(weights), device=CPU)


def test_weights_with_code_rejected(tmp_path: Path) -> None:
    # A pickle that would call a function on load: weights_only=True must refuse it.
    weights = tmp_path / "unsafe.pth"
    with open(weights, "wb") as f:
        pickle.dump({"head.bias": print}, f, protocol=2)
    with pytest.raises(ModelLoadError, match="not a state dict that loads with weights_only=True"):
        load_model(FACTORY, weights=str(weights), device=CPU)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"weights file .*missing\.pth not found"):
        load_model(FACTORY, weights=str(tmp_path / "missing.pth"), device=CPU)


def test_weights_for_model_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.jit.script(build_tiny_cnn()).save(str(path))
    with pytest.raises(ModelLoadError, match=r"--weights applies to package\.module:factory"):
        load_model(str(path), weights="w.pth", device=CPU)


def test_state_dict_file_is_not_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(build_tiny_cnn().state_dict(), path)
    with pytest.raises(ModelLoadError, match="is not a TorchScript file"):
        load_model(str(path), device=CPU)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_package.models:build", "cannot import no_such_package.models"),
        ("tests.evaluator.tiny_models:missing", "has no attribute missing"),
        ("tests.evaluator.tiny_models:build_not_a_module", "returned str, expected"),
        ("missing-model.pt", "model file missing-model.pt not found"),
    ],
)
def test_bad_model_spec_rejected(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(spec, device=CPU)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    with pytest.raises(BinconvError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_unavailable_rejected() -> None:
    with pytest.raises(BinconvError, match="CUDA is not available"):
        resolve_device("cuda")
