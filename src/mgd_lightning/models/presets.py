"""The paper's four networks as :class:`DeepLabV3Plus` subclasses (METHOD.md A.2, A.3, E.3).

Each preset fixes the backbone and its surgery and keeps every other argument, so a
LightningCLI YAML can write::

    student:
      class_path: mgd_lightning.models.StudentResNet18
      init_args: {num_classes: 21}

| Preset | Backbone (timm) | Stem | Output stride | Params | GFLOPs |
|---|---|---|---|---|---|
| ``StudentResNet18`` | ``resnet18`` | deep, 32 | 16, dilations 2, 4 | 11.20 M | 17.21 |
| ``StudentMobileNetV2`` | ``mobilenetv2_100`` | 3x3 | 32, dilations 2, 4, 8 | 1.81 M | 1.53 |
| ``TeacherResNet101`` | ``resnet101`` | deep, 64 | 16, dilations 2, 4, 8 | 42.62 M | 59.11 |
| ``TeacherWideResNet50`` | ``wide_resnet50_2`` | 7x7 | 16, dilations 2, 4, 8 | 66.83 M | 91.12 |

Params and GFLOPs are those of the backbone alone, at 512x512 (see
:func:`~mgd_lightning.models.count_flops`).
"""

from __future__ import annotations

import os
from typing import Any

from mgd_lightning.models.deeplabv3plus import (
    DeepLabV3Plus,
    OutputStride,
    _set_dilation,
    plain_init_args,
)
from mgd_lightning.models.weights import load_network_weights

__all__ = [
    "StudentMobileNetV2",
    "StudentResNet18",
    "TeacherResNet101",
    "TeacherWideResNet50",
]

_WeightsPath = str | os.PathLike[str] | None


def _refuse_pretrained_deep_stem(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"`pretrained`=True is not available for {name}: timm has no ImageNet weights for "
            "this deep-stem layout (its `*d` models also change the downsampling). Pass "
            "`backbone_weights` (a local file of this exact backbone) instead."
        )


class StudentResNet18(DeepLabV3Plus):
    """ResNet-18 student: deep stem (width 32), output stride 16 (METHOD.md A.2).

    timm ``resnet18`` with ``stem_type="deep", stem_width=32`` (3x3 s2 conv 3->32, 32->32,
    32->64); ``layer4`` keeps stride 1 and its two blocks get dilations 2 and 4
    (``multi_grid=(1, 2)``). Backbone: 11.20 M parameters, 17.21 GFLOPs at 512x512.

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: not available (timm has no weights for this stem): raises ValueError.
        head_channels: ASPP and decoder width (256 in the paper).
        low_level_channels: ``None`` means 48.
        aspp_rates: ``None`` means (6, 12, 18) scaled to the output stride.
        backbone_kwargs: extra ``timm.create_model`` arguments, merged over the deep stem.
        backbone_weights: local backbone file (see :class:`DeepLabV3Plus`).
        weights: local whole-network file (see :class:`DeepLabV3Plus`).

    Shape:
        - x: ``(B, 3, H, W)``.
        - output: logits ``(B, K, H, W)``, features ``(B, C, H/4, W/4)``.
    """

    def __init__(
        self,
        num_classes: int,
        output_stride: OutputStride = 16,
        pretrained: bool = False,
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: _WeightsPath = None,
        weights: _WeightsPath = None,
    ) -> None:
        recorded = plain_init_args(locals())
        _refuse_pretrained_deep_stem(type(self).__name__, pretrained)
        super().__init__(
            "resnet18",
            num_classes,
            output_stride=output_stride,
            head_channels=head_channels,
            low_level_channels=low_level_channels,
            aspp_rates=aspp_rates,
            multi_grid=(1, 2),
            backbone_kwargs={"stem_type": "deep", "stem_width": 32, **(backbone_kwargs or {})},
            backbone_weights=backbone_weights,
            weights=weights,
        )
        self.init_args = recorded


class StudentMobileNetV2(DeepLabV3Plus):
    """MobileNet-v2 student as the paper measured it (METHOD.md A.2, E.3).

    timm ``mobilenetv2_100`` without the final 1x1 conv to 1280 (``features_only`` stops at
    the 320-channel block). At ``output_stride=32`` (default, the paper's) the strides are
    kept and the depthwise 3x3 convs of the blocks that torchvision calls ``features[15]``,
    ``features[16]``, ``features[17]`` (timm ``blocks[5][1]``, ``blocks[5][2]``,
    ``blocks[6][0]``) get dilations 2, 4, 8 (padding equal to the dilation); the ASPP keeps
    the reference rates (6, 12, 18). At 16 or 8, timm removes the last strides and the same
    three blocks get dilations (2, 4, 8) at 16 and (4, 8, 16) at 8; the ASPP rates are
    scaled. Low-level projection 24 -> 24. Backbone: 1.81 M parameters, 1.53 GFLOPs at
    512x512 (stride 32).

    Args:
        num_classes: ``K``.
        output_stride: 32 (paper), 16 or 8.
        pretrained: timm's ImageNet weights (``mobilenetv2_100``; needs internet). The
            reference used torchvision's weights, of the same layout.
        head_channels: ASPP and decoder width (256 in the paper).
        low_level_channels: ``None`` means 24.
        aspp_rates: ``None`` means (6, 12, 18) at stride 32 and 16, (12, 24, 36) at 8.
        backbone_kwargs: extra ``timm.create_model`` arguments.
        backbone_weights: local backbone file (see :class:`DeepLabV3Plus`).
        weights: local whole-network file (see :class:`DeepLabV3Plus`).

    Shape:
        - x: ``(B, 3, H, W)``.
        - output: logits ``(B, K, H, W)``, features ``(B, C, H/4, W/4)``.
    """

    def __init__(
        self,
        num_classes: int,
        output_stride: OutputStride = 32,
        pretrained: bool = False,
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: _WeightsPath = None,
        weights: _WeightsPath = None,
    ) -> None:
        recorded = plain_init_args(locals())
        if aspp_rates is None and output_stride == 32:
            aspp_rates = (6, 12, 18)
        super().__init__(
            "mobilenetv2_100",
            num_classes,
            output_stride=output_stride,
            pretrained=pretrained,
            head_channels=head_channels,
            low_level_channels=low_level_channels,
            aspp_rates=aspp_rates,
            backbone_kwargs=backbone_kwargs,
            backbone_weights=None,
            weights=None,
        )
        self.init_args = recorded
        scale = max(1, 16 // output_stride)
        blocks: Any = self.backbone.blocks
        for block, dilation in zip(
            (blocks[5][1], blocks[5][2], blocks[6][0]), (2, 4, 8), strict=True
        ):
            _set_dilation(block.conv_dw, dilation * scale)
        # Weights are loaded after the surgery (it changes no parameter, but keep one order).
        if backbone_weights is not None:
            self.load_backbone_weights(backbone_weights)
        if weights is not None:
            load_network_weights(self, weights)


class TeacherResNet101(DeepLabV3Plus):
    """ResNet-101 v1c "deep" teacher T_D (METHOD.md A.3).

    timm ``resnet101`` with ``stem_type="deep", stem_width=64`` (3->64->64->128), output
    stride 16, the three ``layer4`` blocks dilated 2, 4, 8 (``multi_grid=(1, 2, 4)``).
    Backbone: 42.62 M parameters, 59.11 GFLOPs at 512x512.

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: not available (timm has no weights for this stem): raises ValueError.
        head_channels: ASPP and decoder width (256 in the paper).
        low_level_channels: ``None`` means 48.
        aspp_rates: ``None`` means (6, 12, 18) scaled to the output stride.
        backbone_kwargs: extra ``timm.create_model`` arguments, merged over the deep stem.
        backbone_weights: local backbone file (see :class:`DeepLabV3Plus`).
        weights: local whole-network file (see :class:`DeepLabV3Plus`).

    Shape:
        - x: ``(B, 3, H, W)``.
        - output: logits ``(B, K, H, W)``, features ``(B, C, H/4, W/4)``.
    """

    def __init__(
        self,
        num_classes: int,
        output_stride: OutputStride = 16,
        pretrained: bool = False,
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: _WeightsPath = None,
        weights: _WeightsPath = None,
    ) -> None:
        recorded = plain_init_args(locals())
        _refuse_pretrained_deep_stem(type(self).__name__, pretrained)
        super().__init__(
            "resnet101",
            num_classes,
            output_stride=output_stride,
            head_channels=head_channels,
            low_level_channels=low_level_channels,
            aspp_rates=aspp_rates,
            multi_grid=(1, 2, 4),
            backbone_kwargs={"stem_type": "deep", "stem_width": 64, **(backbone_kwargs or {})},
            backbone_weights=backbone_weights,
            weights=weights,
        )
        self.init_args = recorded


class TeacherWideResNet50(DeepLabV3Plus):
    """WRN-50-2 "wide" teacher T_W (METHOD.md A.3; "wide_resnet34_2" in the reference).

    timm ``wide_resnet50_2`` (7x7 stem, Bottleneck [3, 4, 6, 3] with doubled width), output
    stride 16, ``layer4`` dilated 2, 4, 8 (``multi_grid=(1, 2, 4)``). Backbone: 66.83 M
    parameters, 91.12 GFLOPs at 512x512.

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: timm's ImageNet weights for ``wide_resnet50_2`` (needs internet).
        head_channels: ASPP and decoder width (256 in the paper).
        low_level_channels: ``None`` means 48.
        aspp_rates: ``None`` means (6, 12, 18) scaled to the output stride.
        backbone_kwargs: extra ``timm.create_model`` arguments.
        backbone_weights: local backbone file (see :class:`DeepLabV3Plus`).
        weights: local whole-network file (see :class:`DeepLabV3Plus`).

    Shape:
        - x: ``(B, 3, H, W)``.
        - output: logits ``(B, K, H, W)``, features ``(B, C, H/4, W/4)``.
    """

    def __init__(
        self,
        num_classes: int,
        output_stride: OutputStride = 16,
        pretrained: bool = False,
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: _WeightsPath = None,
        weights: _WeightsPath = None,
    ) -> None:
        recorded = plain_init_args(locals())
        super().__init__(
            "wide_resnet50_2",
            num_classes,
            output_stride=output_stride,
            pretrained=pretrained,
            head_channels=head_channels,
            low_level_channels=low_level_channels,
            aspp_rates=aspp_rates,
            multi_grid=(1, 2, 4),
            backbone_kwargs=backbone_kwargs,
            backbone_weights=backbone_weights,
            weights=weights,
        )
        self.init_args = recorded
