"""Without ``validate: true`` the datamodules still check every file's header at setup.

Before, a file that is not an image (or a colour mask, or a mask of another size) was found
only when a batch reached it, mid-run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgd_lightning.datamodules import FolderDataModule

pytestmark = pytest.mark.filterwarnings("ignore:.*treespec")


def test_non_image_file_is_found_at_setup(folder_root: Path) -> None:
    (folder_root / "train" / "images" / "train3.png").write_bytes(b"")
    dm = FolderDataModule(folder_root, batch_size=2)
    expected = r"(?s)1 of 8 samples failed the header checks.*train3\.png"
    with pytest.raises(ValueError, match=expected):
        dm.setup("fit")


def test_colour_mask_and_size_mismatch_are_found_at_setup(folder_root: Path) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder_root / "val" / "masks" / "val1.png")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(folder_root / "val" / "masks" / "val2.png")
    dm = FolderDataModule(folder_root, batch_size=2)
    with pytest.raises(ValueError, match=r"(?s)2 of 3 samples.*val1\.png is a RGB image.*"
                                         r"val2.*different sizes"):
        dm.setup("validate")
