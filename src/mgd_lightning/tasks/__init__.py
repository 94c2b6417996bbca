"""Lightning training modules: labeled-only, CPS teachers, and MGD distillation."""

from mgd_lightning.tasks.base import (
    NonFiniteLossError,
    NonFiniteWeightsError,
    SegmentationTask,
)
from mgd_lightning.tasks.cps import CPSModule
from mgd_lightning.tasks.distillation import DistillationModule, MGDModule
from mgd_lightning.tasks.supervised import SupervisedModule

__all__ = [
    "CPSModule",
    "DistillationModule",
    "MGDModule",
    "NonFiniteLossError",
    "NonFiniteWeightsError",
    "SegmentationTask",
    "SupervisedModule",
]
