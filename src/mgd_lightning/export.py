"""Export the trained student alone to ONNX, TorchScript or a self-describing safetensors file.

The exported model takes normalised images ``(B, 3, H, W)`` float32 (ImageNet mean/std, as the
datamodules yield them) and returns logits ``(B, K, H, W)`` float32 at the input size; batch,
height and width are dynamic. It is a whole-image pass: padding to a size (``eval_pad_to``) or
sliding-window inference (``eval_mode="sliding"``) is left to the caller. No teacher weights
are in it. Files are written atomically (:mod:`mgd_lightning.files`): nothing is left at the
destination on error. :func:`load_student` is :func:`mgd_lightning.models.load_student`.

:func:`export_safetensors` stores the student's weights (fp16 by default) with its network
description in the file's metadata, for this library: ``load_student(path)`` rebuilds it and
``mgd-lightning evaluate --weights path`` scores it.

Example:
    >>> import tempfile, pathlib, torch
    >>> from mgd_lightning.models import DeepLabV3Plus
    >>> net = DeepLabV3Plus("resnet10t", num_classes=3, head_channels=16)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "student.pt"
    >>> _ = export_torchscript(net, path, example_size=(32, 32))
    >>> loaded = load_torchscript(path)
    >>> tuple(loaded(torch.zeros(2, 3, 48, 40)).shape)
    (2, 3, 48, 40)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mgd_lightning.files import atomic_path, writable_folder
from mgd_lightning.models.inference import logits_of
from mgd_lightning.models.spec import (
    STUDENT_FILE_FORMAT,
    load_student,
    portable_spec,
    storage_state_dict,
)
from mgd_lightning.models.weights import sha256_file

__all__ = [
    "ExportFormat",
    "LogitsOnly",
    "export",
    "export_onnx",
    "export_safetensors",
    "export_torchscript",
    "load_student",
    "load_torchscript",
]

ExportFormat = Literal["onnx", "torchscript", "safetensors"]

#: Default ONNX opset (supported by onnxruntime >= 1.14 and torch's exporters).
DEFAULT_OPSET = 17


class LogitsOnly(nn.Module):
    """Wrap a segmentation network so that it returns the logits alone.

    Args:
        network: returns logits or a ``SegmentationOutput`` whose first field is the logits.

    Shape:
        - images: ``(B, 3, H, W)`` normalised float images.
        - output: logits ``(B, K, H, W)`` (raw scores, not probabilities).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.training = network.training

    def forward(self, images: Tensor) -> Tensor:
        return logits_of(self.network(images))


def _example(network: nn.Module, example_size: Sequence[int], batch: int = 1) -> Tensor:
    size = tuple(example_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"`example_size` must be two positive integers (H, W), got {example_size}")
    parameter = next(network.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    return torch.randn(batch, 3, size[0], size[1], dtype=dtype, device=device)


def _check_destination(path: str | os.PathLike[str], suffixes: Sequence[str]) -> Path:
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(
            f"output {target} is a folder; give a file name such as "
            f"{target / ('student' + suffixes[0])}"
        )
    writable_folder(target.parent, f"output {target}")
    return target


@contextlib.contextmanager
def _eval_mode(network: nn.Module) -> Iterator[None]:
    """Put ``network`` in eval mode for the block, then back in its former mode."""
    was_training = network.training
    network.eval()
    try:
        yield
    finally:
        network.train(was_training)


def export_onnx(
    network_or_checkpoint: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    example_size: Sequence[int] = (256, 256),
    dynamic: bool = True,
    dynamo: bool = False,
    verify: bool = False,
    atol: float = 1e-4,
) -> Path:
    """Export the student to an ONNX file (input ``images``, output ``logits``).

    Args:
        network_or_checkpoint: network, training module or checkpoint path (see
            :func:`load_student`).
        path: destination ``.onnx`` file (parent folders are created).
        opset: ONNX opset version.
        example_size: ``(H, W)`` of the example image the graph is traced with.
        dynamic: batch, height and width are dynamic axes (``batch``, ``height``, ``width``);
            ``False`` fixes them to the example's ``(1, 3, H, W)``.
        dynamo: use torch's ``torch.export``-based exporter (needs the ``onnxscript``
            package); the default is the TorchScript-based exporter, which needs nothing else.
        verify: run the file with onnxruntime on the example and a second size, and raise
            ``ValueError`` if the logits differ from PyTorch's by more than ``atol``.
        atol: tolerance of ``verify``.

    Returns:
        The path written.

    Raises:
        ImportError: the ``onnx`` package (the ``export`` extra) is not installed.

    Shape:
        - input ``images``: ``(B, 3, H, W)`` float32, normalised.
        - output ``logits``: ``(B, K, H, W)`` float32.
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
        raise ValueError(f"`opset` must be an integer ONNX opset version >= 7, got {opset!r}")
    if importlib.util.find_spec("onnx") is None:
        raise ImportError(
            "ONNX export needs the onnx package: pip install 'mgd-lightning[export]' (onnx and "
            "onnxruntime) or pip install onnx"
        )
    if dynamo and importlib.util.find_spec("onnxscript") is None:
        raise ValueError(
            "`dynamo=True` needs the onnxscript package (pip install onnxscript); or use the "
            "default TorchScript-based exporter (dynamo=False)"
        )
    target = _check_destination(path, (".onnx",))
    network = load_student(network_or_checkpoint)
    wrapper = LogitsOnly(network)
    example = _example(network, example_size)
    axes = {
        "images": {0: "batch", 2: "height", 3: "width"},
        "logits": {0: "batch", 2: "height", 3: "width"},
    }
    kwargs: dict[str, Any] = {
        "input_names": ["images"],
        "output_names": ["logits"],
        "opset_version": opset,
        "dynamo": dynamo,
    }
    if dynamic:
        kwargs["dynamic_axes"] = axes
    with (
        _eval_mode(wrapper),
        atomic_path(target) as temporary,
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(wrapper, (example,), str(temporary), **kwargs)
        if verify:
            _verify_onnx(wrapper, temporary, example, dynamic, atol)
    return target


def _verify_onnx(
    wrapper: nn.Module, path: Path, example: Tensor, dynamic: bool, atol: float
) -> None:
    try:
        import onnxruntime
    except ImportError as missing:
        raise ValueError("`verify=True` needs onnxruntime (pip install onnxruntime)") from missing
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [example]
    if dynamic:
        height, width = example.shape[-2:]
        inputs.append(torch.randn(2, 3, height + 16, width + 32).to(example))
    for images in inputs:
        with torch.no_grad():
            expected = wrapper(images).float().cpu().numpy()
        (got,) = session.run(None, {"images": images.cpu().numpy()})
        difference = float(abs(got - expected).max())
        if not difference <= atol:
            raise ValueError(
                f"the ONNX export differs from PyTorch by {difference:.3g} (> atol={atol}) at "
                f"input {tuple(images.shape)}"
            )


def export_torchscript(
    network_or_checkpoint: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    example_size: Sequence[int] = (256, 256),
    verify: bool = False,
    atol: float = 1e-4,
) -> Path:
    """Export the student as a traced TorchScript file (``torch.jit.load`` reads it).

    The trace records the network on one example image; the DeepLabv3+ networks have no
    data-dependent control flow, so the file works at any batch and spatial size.

    Args:
        network_or_checkpoint: network, training module or checkpoint path (see
            :func:`load_student`).
        path: destination ``.pt`` file (parent folders are created).
        example_size: ``(H, W)`` of the example image the network is traced with.
        verify: reload the file and raise ``ValueError`` if its logits differ from the
            network's by more than ``atol`` on the example and a second size.
        atol: tolerance of ``verify``.

    Returns:
        The path written.

    Shape:
        - input: ``(B, 3, H, W)`` float32, normalised.
        - output: logits ``(B, K, H, W)`` float32.
    """
    target = _check_destination(path, (".pt",))
    network = load_student(network_or_checkpoint)
    wrapper = LogitsOnly(network)
    example = _example(network, example_size)
    with (
        _eval_mode(wrapper),
        atomic_path(target) as temporary,
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example)
        torch.jit.save(traced, str(temporary))
        if verify:
            loaded = load_torchscript(temporary)
            height, width = example.shape[-2:]
            second = torch.randn(2, 3, height + 16, width + 32).to(example)
            for images in (example, second):
                with torch.no_grad():
                    difference = float((loaded(images) - wrapper(images)).abs().max())
                if not difference <= atol:
                    raise ValueError(
                        f"the TorchScript export differs from PyTorch by {difference:.3g} "
                        f"(> atol={atol}) at input {tuple(images.shape)}"
                    )
    return target


def export_safetensors(
    network_or_checkpoint: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    dtype: torch.dtype = torch.float16,
    info: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write the student as a self-describing safetensors file; return it and its SHA-256.

    Floating-point tensors are stored in ``dtype``; the metadata holds ``format``, ``network``
    (the description with ``backbone_weights``, ``weights`` and ``pretrained`` cleared, so that
    loading reads no other file) and ``info`` (JSON). A file already at ``path`` is replaced.

    Args:
        network_or_checkpoint: network, training module or checkpoint path (see
            :func:`load_student`).
        path: destination ``.safetensors`` file (parent folders are created).
        dtype: storage dtype of floating-point tensors (fp16 halves the size).
        info: plain-data notes (how it was trained, its scores), stored as JSON.

    Returns:
        ``(path, sha256)``.

    Raises:
        ValueError: the network has no description, or a value does not fit ``dtype``.
    """
    from safetensors.torch import save_file

    target = _check_destination(path, (".safetensors",))
    network = load_student(network_or_checkpoint)
    metadata = {
        "format": STUDENT_FILE_FORMAT,
        "network": json.dumps(portable_spec(network, "the student")),
        "info": json.dumps(info or {}),
    }
    state = storage_state_dict(network, dtype, "the student")
    with atomic_path(target) as temporary:
        save_file(state, os.fspath(temporary), metadata=metadata)
    return target, sha256_file(target)


def load_torchscript(path: str | os.PathLike[str]) -> Any:
    """Load a file of :func:`export_torchscript` on the CPU, in eval mode."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        module = torch.jit.load(str(path), map_location="cpu")
    return module.eval()


def export(
    network_or_checkpoint: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    format: ExportFormat = "onnx",
    **kwargs: Any,
) -> Path:
    """Export to ``format``: :func:`export_onnx`, :func:`export_torchscript` or
    :func:`export_safetensors` with ``kwargs``."""
    if format == "onnx":
        return export_onnx(network_or_checkpoint, path, **kwargs)
    if format == "torchscript":
        return export_torchscript(network_or_checkpoint, path, **kwargs)
    if format == "safetensors":
        return export_safetensors(network_or_checkpoint, path, **kwargs)[0]
    raise ValueError(f"`format` must be 'onnx', 'torchscript' or 'safetensors', got {format!r}")
