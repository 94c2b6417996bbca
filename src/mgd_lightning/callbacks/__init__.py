"""Lightning callbacks for using the student: prediction PNGs, training panels, IoU tables."""

from mgd_lightning.callbacks.prediction_writer import PredictionWriter
from mgd_lightning.callbacks.visualisation import PerClassIoUTable, SegmentationPanels

__all__ = ["PerClassIoUTable", "PredictionWriter", "SegmentationPanels"]
