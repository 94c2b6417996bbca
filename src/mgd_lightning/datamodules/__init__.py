"""Lightning datamodules: ``SemiSupervisedDataModule`` and one small subclass per dataset."""

from mgd_lightning.datamodules.base import SemiSupervisedDataModule
from mgd_lightning.datamodules.camvid import CamVidDataModule
from mgd_lightning.datamodules.cityscapes import CityscapesDataModule
from mgd_lightning.datamodules.file import FileDataModule
from mgd_lightning.datamodules.folder import FolderDataModule
from mgd_lightning.datamodules.synthetic import SyntheticDataModule
from mgd_lightning.datamodules.voc import PascalVOCDataModule

__all__ = [
    "CamVidDataModule",
    "CityscapesDataModule",
    "FileDataModule",
    "FolderDataModule",
    "PascalVOCDataModule",
    "SemiSupervisedDataModule",
    "SyntheticDataModule",
]
