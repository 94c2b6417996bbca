"""SegmentationPanels and PerClassIoUTable with TensorBoard, CSV, no logger and wandb."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from PIL import Image

from _tiny_models import make_tiny
from mgd_lightning.callbacks import PerClassIoUTable, SegmentationPanels
from mgd_lightning.data.synthetic import SYNTHETIC_CLASS_NAMES
from mgd_lightning.datamodules import SyntheticDataModule
from mgd_lightning.models import DeepLabV3Plus, TeacherPair
from mgd_lightning.tasks import DistillationModule, SupervisedModule

SIZE = 32
GAP = 2


def _tiny(seed: int = 0) -> DeepLabV3Plus:
    return make_tiny(6, seed=seed)


def _data() -> SyntheticDataModule:
    return SyntheticDataModule(
        image_size=SIZE, num_train=8, num_val=3, num_test=2, labeled_ratio=0.5, batch_size=2
    )


def _fit(
    tmp_path: Path, logger: Logger | bool, callbacks: list[pl.Callback], epochs: int = 1
) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=1,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = SupervisedModule(_tiny(), num_classes=6, class_names=SYNTHETIC_CLASS_NAMES)
    trainer.fit(module, datamodule=_data())
    return trainer


def _panel_width(columns: int) -> int:
    return columns * SIZE + GAP * (columns + 1)


def test_tensorboard_gets_panel_image_and_iou_text(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    _fit(tmp_path, logger, [SegmentationPanels(num_images=3), PerClassIoUTable()])
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    images = events.Images("val_panels")
    assert len(images) == 1  # the sanity check is skipped
    assert (images[0].width, images[0].height) == (_panel_width(3), 14 + 3 * SIZE + 4 * GAP)
    text = events.Tensors("val_IoU_table/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| background |" in text and "| cross |" in text


def test_csv_logger_gets_png_files_and_a_csv_every_n_epochs(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="csv")
    panels = SegmentationPanels(every_n_epochs=2, num_images=2)
    table = PerClassIoUTable()
    trainer = _fit(tmp_path, logger, [panels, table], epochs=2)
    pngs = sorted((Path(logger.log_dir) / "panels").glob("*.png"))
    assert [p.name for p in pngs] == ["val_panels-epoch=1-step=2.png"]
    picture = np.asarray(Image.open(pngs[0]))
    assert picture.shape == (14 + 2 * SIZE + 3 * GAP, _panel_width(3), 3)
    with open(Path(logger.log_dir) / "val_per_class_iou.csv", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["epoch", "step", "mIoU", *SYNTHETIC_CLASS_NAMES]
    assert [r[:2] for r in rows[1:]] == [["0", "1"], ["1", "2"]]
    assert table.last_rows[0] == (
        "background",
        pytest.approx(float(trainer.callback_metrics["val_IoU_background"])),
    )


def test_without_logger_files_go_under_the_root_dir(tmp_path: Path) -> None:
    trainer = pl.Trainer(logger=False, accelerator="cpu", default_root_dir=tmp_path)
    SegmentationPanels()._log(trainer, np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in (tmp_path / "panels").glob("*.png")] == [
        "val_panels-epoch=0-step=0.png"
    ]
    module = SupervisedModule(_tiny(), num_classes=6, class_names=SYNTHETIC_CLASS_NAMES)
    trainer.callback_metrics.update({"val_IoU_disc": torch.tensor(float("nan"))})
    PerClassIoUTable()._log(trainer, module, "val")
    lines = (tmp_path / "val_per_class_iou.csv").read_text(encoding="utf-8").splitlines()
    assert lines == ["epoch,step,mIoU,disc", "0,0,nan,nan"]


def test_panel_shows_both_teachers(tmp_path: Path) -> None:
    module = DistillationModule(_tiny(0), teachers=TeacherPair(_tiny(1), _tiny(2)), num_classes=6)
    panels = SegmentationPanels(num_images=1)
    batch = next(iter(_loader()))
    trainer: Any = type("T", (), {"sanity_checking": False, "datamodule": None})()
    panels.on_validation_epoch_start(trainer, module)
    panels.on_validation_batch_end(trainer, module, None, batch, 0)
    picture = panels.render(module)
    assert picture.shape == (14 + SIZE + 2 * GAP, _panel_width(5), 3)
    assert module.training  # mode restored


def _loader() -> Any:
    data = _data()
    data.setup("validate")
    return data.val_dataloader()


def test_wandb_logger_gets_image_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = WandbLogger(offline=True, save_dir=str(tmp_path))
    calls: dict[str, dict[str, Any]] = {}
    monkeypatch.setattr(logger, "log_image", lambda **kw: calls.setdefault("image", kw))
    monkeypatch.setattr(logger, "log_table", lambda **kw: calls.setdefault("table", kw))
    trainer = pl.Trainer(logger=logger, accelerator="cpu", default_root_dir=tmp_path)
    SegmentationPanels()._log(trainer, np.zeros((4, 4, 3), np.uint8))
    module = SupervisedModule(_tiny(), num_classes=6, class_names=SYNTHETIC_CLASS_NAMES)
    metrics = {f"val_IoU_{name}": torch.tensor(0.5) for name in SYNTHETIC_CLASS_NAMES}
    trainer.callback_metrics.update(metrics)
    PerClassIoUTable()._log(trainer, module, "val")
    assert calls["image"]["key"] == "val_panels" and len(calls["image"]["images"]) == 1
    assert calls["table"]["columns"] == ["class", "IoU"]
    assert calls["table"]["data"][0] == ["background", 0.5]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        SegmentationPanels(every_n_epochs=0)
    with pytest.raises(ValueError, match="num_images"):
        SegmentationPanels(num_images=0)
    with pytest.raises(ValueError, match="stages"):
        PerClassIoUTable(stages=("train",))
