"""Datasets, transforms, CutMix masks and batch types; plain PyTorch, no Lightning."""

from mgd_lightning.data.mixing import cutmix_box_masks, cutmix_boxes, mix

__all__ = ["cutmix_box_masks", "cutmix_boxes", "mix"]
