"""Plain-data network descriptions: describe, rebuild, load a trained student from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from _tiny_models import make_tiny
from mgd_lightning.models import build_network, load_student, network_from_checkpoint, network_spec


def test_spec_round_trip_rebuilds_the_same_architecture() -> None:
    network = make_tiny()
    spec = network_spec(network)
    assert spec is not None
    assert spec["class_path"] == "mgd_lightning.models.deeplabv3plus.DeepLabV3Plus"
    rebuilt = build_network(spec)
    assert type(rebuilt) is type(network)
    assert rebuilt.state_dict().keys() == network.state_dict().keys()
    assert build_network(spec, num_classes=5).num_classes == 5  # type: ignore[attr-defined]


def test_plain_modules_have_no_spec() -> None:
    assert network_spec(nn.Conv2d(3, 3, 1)) is None


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"init_args": {}}, "class_path"),
        ({"class_path": "somewhere_unimported.Net"}, "not part of mgd_lightning"),
        ({"class_path": "mgd_lightning.models.NoSuchNet"}, "cannot find"),
        ({"class_path": "mgd_lightning.models.segment"}, "not a torch.nn.Module"),
    ],
)
def test_bad_descriptions_are_refused(spec: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_network(spec)


def _checkpoint(path: Path, network: nn.Module, with_spec: bool = True) -> Path:
    state = {f"network.{k}": v for k, v in network.state_dict().items()}
    checkpoint: dict[str, object] = {"state_dict": state}
    if with_spec:
        checkpoint["mgd_network"] = network_spec(network)
    torch.save(checkpoint, path)
    return path


def test_student_from_checkpoint_has_the_trained_weights(tmp_path: Path) -> None:
    network = make_tiny(seed=3)
    path = _checkpoint(tmp_path / "last.ckpt", network)
    rebuilt = network_from_checkpoint(path, load_weights=True)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value)
    student = load_student(path)
    assert not student.training
    torch.testing.assert_close(student.state_dict()["classifier.weight"],
                               network.state_dict()["classifier.weight"])


def test_load_student_takes_a_module_or_its_network() -> None:
    network = make_tiny()
    assert load_student(network) is network

    class _Task(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

    assert load_student(_Task()) is network
    with pytest.raises(ValueError, match=r"nn\.Module or a checkpoint path"):
        load_student(3)  # type: ignore[arg-type]


def test_checkpoint_without_description_or_file_names_it(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "plain.ckpt", make_tiny(), with_spec=False)
    with pytest.raises(ValueError, match="no network description"):
        network_from_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        load_student(tmp_path / "missing.ckpt")
