"""``predict`` over a folder finishes the readable images and names the unreadable ones.

Before, it stopped at the first unreadable image after writing 2 of 6.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fake_trees import write_image

from mgd_lightning.cli import main
from mgd_lightning.datamodules import FolderDataModule

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def _predict_folder(root: Path) -> Path:
    folder = root / "to_predict"
    for k in range(6):
        write_image(folder / f"p{k}.png", k)
    (folder / "p2.png").write_bytes(b"not an image")
    good = (folder / "p4.png").read_bytes()
    (folder / "p4.png").write_bytes(good[: len(good) // 2])  # truncated
    return folder


def test_unreadable_images_are_skipped_and_named(folder_root: Path) -> None:
    _predict_folder(folder_root)
    dm = FolderDataModule(folder_root, predict_dir="to_predict", batch_size=2)
    expected = r"(?s)2 of 6 images to predict cannot be read.*p2\.png.*p4\.png"
    with pytest.warns(UserWarning, match=expected):
        dm.setup("predict")
    assert dm.eval_datasets["predict"].names == ["p0", "p1", "p3", "p5"]


def test_validate_true_still_refuses_them(folder_root: Path) -> None:
    _predict_folder(folder_root)
    dm = FolderDataModule(folder_root, predict_dir="to_predict", batch_size=2, validate=True)
    with pytest.raises(ValueError, match=r"2 of 6 samples failed"):
        dm.setup("predict")


def test_predict_cli_writes_the_readable_ones(folder_root: Path, tmp_path: Path) -> None:
    _predict_folder(folder_root)
    out = tmp_path / "preds"
    config = {
        "trainer": {"logger": False, "enable_progress_bar": False},
        "model": {
            "class_path": "mgd_lightning.tasks.SupervisedModule",
            "init_args": {"network": {"class_path": "mgd_lightning.models.DeepLabV3Plus",
                                      "init_args": {"backbone": "resnet10t", "head_channels": 8}}},
        },
        "data": {
            "class_path": "mgd_lightning.datamodules.FolderDataModule",
            "init_args": {"root": str(folder_root), "predict_dir": "to_predict", "batch_size": 2},
        },
    }
    path = tmp_path / "predict.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.warns(UserWarning, match=r"2 of 6 images to predict cannot be read"):
        main(["predict", "--config", str(path), "--return_predictions=false",
              "--trainer.callbacks+=mgd_lightning.callbacks.PredictionWriter",
              f"--trainer.callbacks.output_dir={out}"])
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p3.png", "p5.png"]
