"""The three MGD losses: pure functions in :mod:`.functional` and their ``nn.Module`` twins."""

from mgd_lightning.losses.functional import (
    image_semantic_loss,
    pixel_consistency_loss,
    pseudo_label_cross_entropy,
    pseudo_labels,
    region_content_loss,
    region_similarity,
)
from mgd_lightning.losses.image import ImageSemanticLoss
from mgd_lightning.losses.ohem import OhemCrossEntropyLoss, ohem_cross_entropy
from mgd_lightning.losses.pixel import PixelConsistencyLoss
from mgd_lightning.losses.region import RegionContentLoss

__all__ = [
    "ImageSemanticLoss",
    "OhemCrossEntropyLoss",
    "PixelConsistencyLoss",
    "RegionContentLoss",
    "image_semantic_loss",
    "ohem_cross_entropy",
    "pixel_consistency_loss",
    "pseudo_label_cross_entropy",
    "pseudo_labels",
    "region_content_loss",
    "region_similarity",
]
