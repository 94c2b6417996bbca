"""Every shipped recipe composes and parses with the real CLI (nothing is instantiated)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from mgd_lightning.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAINERS = {"voc": "voc_4gpu.yaml", "cityscapes": "cityscapes_8gpu.yaml"}


def _print_config(*files: Path) -> dict:
    args = ["fit"]
    for file in files:
        args += ["--config", str(file)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


@pytest.mark.parametrize(
    "model",
    sorted(
        p.relative_to(CONFIGS / "model")
        for p in (CONFIGS / "model").rglob("*.yaml")
        if p.parent.name in TRAINERS
    ),
    ids=str,
)
def test_paper_recipe_parses(model: Path) -> None:
    dataset = model.parts[0]
    config = _print_config(
        CONFIGS / "data" / f"{dataset}.yaml",
        CONFIGS / "trainer" / TRAINERS[dataset],
        CONFIGS / "partition" / f"{dataset}_1-8.yaml",
        CONFIGS / "model" / model,
    )
    assert config["trainer"]["max_epochs"] == (34 if dataset == "voc" else 137)
    assert config["data"]["init_args"]["partition"] == "1-8"
    assert config["model"]["class_path"].startswith("mgd_lightning.tasks.")


@pytest.mark.parametrize("partition", ["1-16", "1-4", "1-2"])
@pytest.mark.parametrize("dataset", ["voc", "cityscapes"])
def test_partitions_set_split_and_epochs(dataset: str, partition: str) -> None:
    config = _print_config(
        CONFIGS / "data" / f"{dataset}.yaml",
        CONFIGS / "partition" / f"{dataset}_{partition}.yaml",
        CONFIGS / "model" / dataset / "student_r18_mgd.yaml",
    )
    epochs = {
        "voc": {"1-16": 32, "1-4": 40, "1-2": 60},
        "cityscapes": {"1-16": 128, "1-4": 160, "1-2": 240},
    }
    assert config["trainer"]["max_epochs"] == epochs[dataset][partition]
    assert config["data"]["init_args"]["partition"] == partition


@pytest.mark.parametrize(
    "stage", sorted(p for p in (CONFIGS / "camvid").glob("*.yaml") if p.name != "common.yaml"),
    ids=lambda p: p.name,
)
def test_camvid_configs_parse(stage: Path) -> None:
    config = _print_config(CONFIGS / "camvid" / "common.yaml", stage)
    assert config["data"]["class_path"].endswith("CamVidDataModule")
    assert config["data"]["init_args"]["partition"] == "1-8"
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert config["trainer"]["max_steps"] > 0
    assert config["model"]["class_path"].startswith("mgd_lightning.tasks.")


PAPER_MODELS = sorted(
    p.relative_to(CONFIGS / "model")
    for p in (CONFIGS / "model").rglob("*.yaml")
    if p.parent.name in TRAINERS
)


@pytest.mark.parametrize("model", PAPER_MODELS, ids=str)
def test_paper_recipes_use_imagenet_weights_and_per_image_settings(model: Path) -> None:
    """Every VOC/Cityscapes network starts from ImageNet weights; batch-tied terms per image."""
    dataset = model.parts[0]
    config = _print_config(CONFIGS / "data" / f"{dataset}.yaml", CONFIGS / "model" / model)
    init = config["model"]["init_args"]
    network = init["network"]["init_args"]
    assert network["pretrained"] is True and network["backbone_weights"] is None
    if network.get("stem") is not None:
        assert network["stem"] == "pretrained"
    if init.get("supervised_loss") == "ohem":
        assert init["ohem_min_kept_per_image"] == 50_000
    if "teachers" in init:
        assert init["teachers"]["init_args"]["autocast_dtype"] is None  # fp32 teachers
        assert init["image_reduction"] == "mean"
        lambda_1 = {
            "voc": {"r18": 0.002, "mbv2": 0.0005},
            "cityscapes": {"r18": 0.001, "mbv2": 0.001},
        }
        arch = model.name.split("_")[1]
        assert init["image_weight"] == pytest.approx(2 * lambda_1[dataset][arch])


@pytest.mark.parametrize(
    "model", ["voc/student_r18_supervised.yaml", "voc/student_mbv2_supervised.yaml"]
)
def test_paper_recipe_offline_without_weights_fails_at_once(
    model: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    from mgd_lightning.models import build_network

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    network = _print_config(CONFIGS / "data" / "voc.yaml", CONFIGS / "model" / model)["model"][
        "init_args"
    ]["network"]
    with pytest.raises(RuntimeError, match="backbone_weights=<file>"):
        build_network(network, num_classes=21)
