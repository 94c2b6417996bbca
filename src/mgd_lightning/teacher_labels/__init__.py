"""Teacher-output cache: hard pseudo-labels computed once, warped to each training view.

Teachers are frozen and locked in eval mode, so their hard pseudo-label for an image does not
change during training. :class:`TeacherLabelCache` runs them once over the training images and
stores the class maps as a memory-mapped ``uint8`` array; :func:`warp_labels` takes each
view's labels by replaying the view's flip, scale, pad and crop (:class:`ViewGeometry`) on the
cached map with nearest neighbour. Off by default: see ``docs/performance.md`` for what it
trades (labels near boundaries, padded pixels ignored instead of labelled). Switch it on with
:class:`TeacherLabelCacheCallback` (a LightningCLI ``trainer.callbacks`` entry, or the pipeline's
``teacher_label_cache`` option) or with :func:`attach_teacher_label_cache` in Python. The batch
keys it adds are declared in :mod:`mgd_lightning.data.batch`.
"""

from mgd_lightning.teacher_labels.attach import attach_teacher_label_cache
from mgd_lightning.teacher_labels.callback import TeacherLabelCacheCallback
from mgd_lightning.teacher_labels.datasets import (
    CachedLabeledDataset,
    CachedUnlabeledPairDataset,
    GeometryRecordingTransform,
)
from mgd_lightning.teacher_labels.geometry import (
    GEOMETRY_FIELDS,
    ViewGeometry,
    geometry_from_applied,
    warp_labels,
)
from mgd_lightning.teacher_labels.labels import (
    NO_LABEL,
    TeacherLabelCache,
    build_teacher_label_cache,
)

__all__ = [
    "GEOMETRY_FIELDS",
    "NO_LABEL",
    "CachedLabeledDataset",
    "CachedUnlabeledPairDataset",
    "GeometryRecordingTransform",
    "TeacherLabelCache",
    "TeacherLabelCacheCallback",
    "ViewGeometry",
    "attach_teacher_label_cache",
    "build_teacher_label_cache",
    "geometry_from_applied",
    "warp_labels",
]
