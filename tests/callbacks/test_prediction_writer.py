"""PredictionWriter: through the real CLI, and its file handling on its own."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mgd_lightning.callbacks import PredictionWriter
from mgd_lightning.cli import main
from mgd_lightning.data.synthetic import SYNTHETIC_PALETTE

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def _predict(config: Path, checkpoint: Path, *extra: str) -> Any:
    return main(
        [
            "predict",
            "--config",
            str(config),
            "--ckpt_path",
            str(checkpoint),
            "--trainer.callbacks+=mgd_lightning.callbacks.PredictionWriter",
            *extra,
        ]
    )


def test_predict_cli_writes_one_palette_png_per_image(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = trained
    out = tmp_path / "preds"
    cli = _predict(
        config,
        checkpoint,
        f"--trainer.callbacks.output_dir={out}",
        "--trainer.callbacks.overlay=true",
        "--return_predictions=false",
    )
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == [f"test_{i:06d}.png" for i in range(cli.datamodule.num_test)]
    model = cli.model.eval()
    cli.datamodule.setup("predict")
    expected: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for batch in cli.datamodule.predict_dataloader():
            for name, classes in zip(batch["name"], model(batch["image"]).argmax(1), strict=True):
                expected[name] = classes.numpy()
    for name, classes in expected.items():
        image = Image.open(out / f"{name}.png")
        assert image.mode == "P"
        assert image.getpalette()[: 3 * 6] == [v for c in SYNTHETIC_PALETTE for v in c]
        np.testing.assert_array_equal(np.asarray(image), classes)
        overlay = Image.open(out / "overlays" / f"{name}.png")
        assert overlay.mode == "RGB" and overlay.size == image.size
    assert not list(out.rglob("*.tmp"))


def _fake_batch(names: list[str], size: int = 8) -> tuple[dict[str, Any], dict[str, Any]]:
    torch.manual_seed(0)
    prediction = torch.randint(0, 3, (len(names), size, size))
    batch = {"image": torch.randn(len(names), 3, size, size), "name": names}
    return {"prediction": prediction, "name": names}, batch


def _writer(tmp_path: Path, **kwargs: Any) -> PredictionWriter:
    writer = PredictionWriter(tmp_path / "out", palette=PALETTE, **kwargs)
    writer.setup(SimpleNamespace(), SimpleNamespace(), "predict")  # type: ignore[arg-type]
    return writer


def _write(writer: PredictionWriter, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
    trainer, module = SimpleNamespace(), SimpleNamespace()
    writer.write_on_batch_end(trainer, module, outputs, None, batch, 0, 0)  # type: ignore[arg-type]


def test_names_with_slashes_make_folders_and_values_round_trip(tmp_path: Path) -> None:
    writer = _writer(tmp_path, overlay=True, overlay_alpha=1.0)
    outputs, batch = _fake_batch(["city/a", "b"])
    _write(writer, outputs, batch)
    classes = np.asarray(Image.open(tmp_path / "out" / "city" / "a.png"))
    np.testing.assert_array_equal(classes, outputs["prediction"][0].numpy())
    coloured = np.asarray(Image.open(tmp_path / "out" / "overlays" / "b.png"))
    np.testing.assert_array_equal(coloured, np.asarray(PALETTE)[outputs["prediction"][1]])


def test_existing_files_are_not_overwritten_silently(tmp_path: Path) -> None:
    outputs, batch = _fake_batch(["a"])
    _write(_writer(tmp_path), outputs, batch)
    with pytest.raises(FileExistsError, match=r"a\.png already exists.*overwrite"):
        _write(_writer(tmp_path), outputs, batch)
    _write(_writer(tmp_path, overwrite=True), outputs, batch)
    duplicate, batch = _fake_batch(["c", "c"])
    with pytest.raises(FileExistsError, match="both named 'c'"):
        _write(_writer(tmp_path, overwrite=True), duplicate, batch)


def test_names_cannot_leave_the_output_dir(tmp_path: Path) -> None:
    outputs, batch = _fake_batch(["../escape"])
    with pytest.raises(ValueError, match="outside"):
        _write(_writer(tmp_path), outputs, batch)
    assert not (tmp_path / "escape.png").exists()


def test_output_dir_that_is_not_a_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = PredictionWriter(blocker / "preds")
    with pytest.raises(NotADirectoryError, match=r"output_dir .*file"):
        writer.setup(SimpleNamespace(), SimpleNamespace(), "predict")  # type: ignore[arg-type]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="overlay_alpha"):
        PredictionWriter("x", overlay_alpha=1.5)
    with pytest.raises(ValueError, match="nothing to write"):
        PredictionWriter("x", write_index_png=False)


def test_overlay_needs_images(tmp_path: Path) -> None:
    outputs, batch = _fake_batch(["a"])
    del batch["image"]
    with pytest.raises(ValueError, match="'image'"):
        _write(_writer(tmp_path, overlay=True), outputs, batch)
