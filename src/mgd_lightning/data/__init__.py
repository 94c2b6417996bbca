"""Datasets, transforms, CutMix masks and batch types; plain PyTorch, no Lightning."""

from mgd_lightning.data.batch import (
    ImageSample,
    LabeledBatch,
    LabeledSample,
    LabeledTrainBatch,
    PredictBatch,
    TrainBatch,
    UnlabeledPairBatch,
    UnlabeledPairSample,
)
from mgd_lightning.data.classes import (
    SYNTHETIC_CLASS_NAMES,
    SYNTHETIC_PALETTE,
    default_palette,
)
from mgd_lightning.data.datasets import (
    BaseSegmentationDataset,
    ImageDataset,
    RawSample,
    SampleFiles,
    SegmentationDataset,
    UnlabeledPairDataset,
    check_files_exist,
    read_image,
    read_mask,
)
from mgd_lightning.data.mixing import cutmix_box_masks, cutmix_boxes, mix
from mgd_lightning.data.splits import SplitEntry, nested_partition, read_split_file, sample_name
from mgd_lightning.data.synthetic import SyntheticScenes, SyntheticSegmentationDataset
from mgd_lightning.data.transforms import (
    DEFAULT_SCALES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationTransform,
    eval_transform,
    parse_crop_size,
    train_transform,
)

__all__ = [
    "DEFAULT_SCALES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SYNTHETIC_CLASS_NAMES",
    "SYNTHETIC_PALETTE",
    "BaseSegmentationDataset",
    "ImageDataset",
    "ImageSample",
    "LabeledBatch",
    "LabeledSample",
    "LabeledTrainBatch",
    "PredictBatch",
    "RawSample",
    "SampleFiles",
    "SegmentationDataset",
    "SegmentationTransform",
    "SplitEntry",
    "SyntheticScenes",
    "SyntheticSegmentationDataset",
    "TrainBatch",
    "UnlabeledPairBatch",
    "UnlabeledPairDataset",
    "UnlabeledPairSample",
    "check_files_exist",
    "cutmix_box_masks",
    "cutmix_boxes",
    "default_palette",
    "eval_transform",
    "mix",
    "nested_partition",
    "parse_crop_size",
    "read_image",
    "read_mask",
    "read_split_file",
    "sample_name",
    "train_transform",
]
