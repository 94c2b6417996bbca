"""Networks of MGD: DeepLabv3+ on timm backbones, the paper's presets, the teacher pair.

Every network returns :class:`SegmentationOutput` ``(logits, features)``: logits
``(B, K, H, W)`` at the input size and decoder features ``(B, C, H/4, W/4)``.
"""

from mgd_lightning.models.backbone_weights import BackboneLoadReport
from mgd_lightning.models.batchnorm import freeze_batchnorm_statistics, reparametrise_batchnorm
from mgd_lightning.models.deeplabv3plus import (
    ASPP,
    BackboneBN,
    DeepLabV3Plus,
    DeepLabV3PlusHead,
    InputNorm,
    OutputStride,
)
from mgd_lightning.models.inference import InferenceMode, MeanOfSoftmaxes, segment
from mgd_lightning.models.outputs import SegmentationOutput
from mgd_lightning.models.presets import (
    StudentMobileNetV2,
    StudentResNet18,
    TeacherResNet101,
    TeacherWideResNet50,
)
from mgd_lightning.models.profile import (
    ProfileRow,
    count_flops,
    count_parameters,
    format_report,
    profile_report,
)
from mgd_lightning.models.shipped import (
    ShippedTeacherError,
    load_shipped_teacher,
    read_manifest,
    save_shipped_teachers,
    shipped_teacher_file,
)
from mgd_lightning.models.spec import (
    STUDENT_FILE_FORMAT,
    build_network,
    load_student,
    network_from_checkpoint,
    network_spec,
    portable_spec,
    read_student_file,
    storage_state_dict,
)
from mgd_lightning.models.teachers import BNMode, TeacherName, TeacherOutputs, TeacherPair
from mgd_lightning.models.weights import (
    load_checkpoint,
    load_network_weights,
    load_state_dict_file,
    load_state_dict_strict,
    sha256_file,
)

__all__ = [
    "ASPP",
    "STUDENT_FILE_FORMAT",
    "BNMode",
    "BackboneBN",
    "BackboneLoadReport",
    "DeepLabV3Plus",
    "DeepLabV3PlusHead",
    "InferenceMode",
    "InputNorm",
    "MeanOfSoftmaxes",
    "OutputStride",
    "ProfileRow",
    "SegmentationOutput",
    "ShippedTeacherError",
    "StudentMobileNetV2",
    "StudentResNet18",
    "TeacherName",
    "TeacherOutputs",
    "TeacherPair",
    "TeacherResNet101",
    "TeacherWideResNet50",
    "build_network",
    "count_flops",
    "count_parameters",
    "format_report",
    "freeze_batchnorm_statistics",
    "load_checkpoint",
    "load_network_weights",
    "load_shipped_teacher",
    "load_state_dict_file",
    "load_state_dict_strict",
    "load_student",
    "network_from_checkpoint",
    "network_spec",
    "portable_spec",
    "profile_report",
    "read_manifest",
    "read_student_file",
    "reparametrise_batchnorm",
    "save_shipped_teachers",
    "segment",
    "sha256_file",
    "shipped_teacher_file",
    "storage_state_dict",
]
