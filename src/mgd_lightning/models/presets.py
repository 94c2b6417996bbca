"""The paper's four networks as :class:`DeepLabV3Plus` subclasses (docs/method.md, networks).

Each preset fixes the backbone and its surgery and keeps every other argument, so a
LightningCLI YAML can write::

    student:
      class_path: mgd_lightning.models.StudentResNet18
      init_args: {num_classes: 21, pretrained: true}

| Preset | Backbone (timm) | Stem | Output stride | Params | GFLOPs |
|---|---|---|---|---|---|
| ``StudentResNet18`` | ``resnet18`` | deep, 32 | 16, dilations 2, 4 | 11.20 M | 17.21 |
| ``StudentMobileNetV2`` | ``mobilenetv2_100`` | 3x3 | 32, dilations 2, 4, 8 | 1.81 M | 1.53 |
| ``TeacherResNet101`` | ``resnet101`` | deep, 64 | 16, dilations 2, 4, 8 | 42.62 M | 59.11 |
| ``TeacherWideResNet50`` | ``wide_resnet50_2`` | 7x7 | 16, dilations 2, 4, 8 | 66.83 M | 91.12 |

``pretrained=True`` loads these timm weights (``model.tag``):

| Preset | ImageNet weights |
|---|---|
| ``StudentResNet18`` | body ``resnet18.tv_in1k``, deep stem ``resnet18d.ra2_in1k`` |
| ``StudentMobileNetV2`` | ``mobilenetv2_100.ra_in1k`` |
| ``TeacherResNet101`` | ``resnet101s.gluon_in1k`` |
| ``TeacherWideResNet50`` | ``wide_resnet50_2.tv_in1k`` |

Params and GFLOPs are those of the backbone alone, at 512x512 (see
:func:`~mgd_lightning.models.count_flops`). ``pretrained=True`` downloads the named timm
weights through timm's hub loading (cached under ``HF_HOME``); ``backbone_weights`` takes a
local file in timm's, torchvision's or this library's layout instead (mapped by name, see
:mod:`~mgd_lightning.models.backbone_weights`). Either way a short report of what loaded is
printed, and a load leaving backbone tensors random is an error unless ``allow_partial``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from mgd_lightning.models.backbone_weights import load_backbone_state, timm_state_dict
from mgd_lightning.models.deeplabv3plus import (
    BackboneBN,
    DeepLabV3Plus,
    InputNorm,
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
StemInit = Literal["pretrained", "random"]

#: The documentation of the arguments every preset shares (appended to each docstring).
_SHARED_ARGS = """
        head_channels: ASPP and decoder width (256 in the paper).
        low_level_channels: ``None`` means 48 (24 for MobileNet-v2).
        aspp_rates: ``None`` means (6, 12, 18) scaled to the output stride.
        backbone_kwargs: extra ``timm.create_model`` arguments (merged over the preset's).
        backbone_weights: a local backbone file (timm, torchvision or this library's layout;
            see :class:`DeepLabV3Plus`). Not together with ``pretrained``.
        weights: a local whole-network file (see :class:`DeepLabV3Plus`); applied last.
        allow_partial: accept a backbone load that leaves some tensors random.
        backbone_bn: ``"train"``, ``"frozen"`` or ``"reparametrise"`` (see
            :class:`DeepLabV3Plus`).
        input_norm: ``"imagenet"`` or ``"minus_one_one"`` (see :class:`DeepLabV3Plus`).

    Shape:
        - x: ``(B, 3, H, W)``.
        - output: logits ``(B, K, H, W)``, features ``(B, C, H/4, W/4)``.
"""


class _Preset(DeepLabV3Plus):
    """Shared construction: the backbone and its surgery, then the ImageNet weights."""

    #: timm model name and arguments of the backbone.
    backbone_model: ClassVar[str]
    preset_kwargs: ClassVar[dict[str, Any]] = {}
    #: ``multi_grid`` of the ResNets' ``layer4`` (None for MobileNet-v2).
    preset_multi_grid: ClassVar[tuple[int, ...] | None] = None
    #: timm ``model.tag`` weights ``pretrained=True`` loads, with the backbone names each fills
    #: (``None``: all).
    pretrained_tags: ClassVar[tuple[tuple[str, tuple[str, ...] | None], ...]]

    def _build(
        self,
        recorded: dict[str, Any],
        num_classes: int,
        output_stride: OutputStride,
        pretrained: bool,
        head_channels: int,
        low_level_channels: int | None,
        aspp_rates: tuple[int, int, int] | None,
        backbone_kwargs: dict[str, Any] | None,
        backbone_weights: _WeightsPath,
        weights: _WeightsPath,
        allow_partial: bool,
        backbone_bn: BackboneBN,
        input_norm: InputNorm,
        random_prefixes: Sequence[str] = (),
    ) -> None:
        if pretrained and backbone_weights is not None:
            raise ValueError(
                f"{type(self).__name__}: give `pretrained`=True or `backbone_weights`, not both"
            )
        DeepLabV3Plus.__init__(
            self,
            self.backbone_model,
            num_classes,
            output_stride=output_stride,
            head_channels=head_channels,
            low_level_channels=low_level_channels,
            aspp_rates=aspp_rates,
            multi_grid=self.preset_multi_grid,
            backbone_kwargs={**self.preset_kwargs, **(backbone_kwargs or {})},
            allow_partial=allow_partial,
            backbone_bn=backbone_bn,
            input_norm=input_norm,
        )
        self.init_args = recorded
        self.adapt_backbone(output_stride)
        # Weights come after the surgery (it changes no parameter, but keep one order).
        if pretrained:
            self.load_pretrained(random_prefixes)
        if backbone_weights is not None:
            self.load_backbone_weights(backbone_weights, random_prefixes)
        if weights is not None:
            load_network_weights(self, weights)

    def adapt_backbone(self, output_stride: int) -> None:
        """Preset-specific surgery after timm built the backbone (none by default)."""

    def load_pretrained(self, random_prefixes: Sequence[str] = ()) -> None:
        """Load the ImageNet weights of ``pretrained_tags`` through timm's hub loading.

        Raises:
            RuntimeError: the weights are not cached and cannot be downloaded (the message says
                how to pass a local file with ``backbone_weights``).
        """
        # A source that only fills parts kept random (the R18 stem) is not downloaded.
        tags = [
            (tag, only)
            for tag, only in self.pretrained_tags
            if only is None or not all(p.startswith(tuple(random_prefixes)) for p in only)
        ]
        sources = [(timm_state_dict(tag), f"timm {tag!r}", only) for tag, only in tags]
        self.backbone_load_reports.extend(
            load_backbone_state(
                self.backbone,
                sources,
                self.backbone_name,
                self.backbone_kwargs,
                random_prefixes,
                self.allow_partial,
                self.partial_load_hint,
            )
        )


class StudentResNet18(_Preset):
    """ResNet-18 student: deep stem (width 32), output stride 16 (docs/method.md, students).

    timm ``resnet18`` with ``stem_type="deep", stem_width=32`` (3x3 s2 conv 3->32, 32->32,
    32->64); ``layer4`` keeps stride 1 and its two blocks get dilations 2 and 4
    (``multi_grid=(1, 2)``). Backbone: 11.20 M parameters, 17.21 GFLOPs at 512x512.

    ImageNet weights: ``pretrained=True`` loads the body (``bn1``, ``layer1..4``) from timm's
    ``resnet18.tv_in1k`` (torchvision's weights, as the reference) and the deep stem
    (``conv1.*``) from ``resnet18d.ra2_in1k`` (the same stem layout; its body differs only in the
    avg-pool projection shortcuts, which are not used). The reference loaded torchvision's
    ``resnet18`` with ``strict=False`` and so left the deep stem random: ``stem="random"``
    reproduces that (with ``pretrained`` or with a torchvision ``resnet18`` file).

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: ImageNet weights through timm's hub (see above).
        stem: ``"pretrained"`` (the stem from the weights) or ``"random"`` (the reference's
            random deep stem, kept as initialised).
    """

    __doc__ = (__doc__ or "") + _SHARED_ARGS
    backbone_model = "resnet18"
    preset_kwargs: ClassVar[dict[str, Any]] = {"stem_type": "deep", "stem_width": 32}
    preset_multi_grid = (1, 2)
    pretrained_tags = (("resnet18.tv_in1k", None), ("resnet18d.ra2_in1k", ("conv1.",)))
    partial_load_hint = " (or `stem='random'` to keep the deep stem random, as the reference)"

    def __init__(
        self,
        num_classes: int,
        output_stride: OutputStride = 16,
        pretrained: bool = False,
        stem: StemInit = "pretrained",
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: _WeightsPath = None,
        weights: _WeightsPath = None,
        allow_partial: bool = False,
        backbone_bn: BackboneBN = "train",
        input_norm: InputNorm = "imagenet",
    ) -> None:
        recorded = plain_init_args(locals())
        if stem not in ("pretrained", "random"):
            raise ValueError(f"`stem` must be 'pretrained' or 'random', got {stem!r}")
        self._build(
            recorded, num_classes, output_stride, pretrained, head_channels,
            low_level_channels, aspp_rates, backbone_kwargs, backbone_weights, weights,
            allow_partial, backbone_bn, input_norm,
            random_prefixes=("conv1.",) if stem == "random" else (),
        )


class StudentMobileNetV2(_Preset):
    """MobileNet-v2 student as the paper measured it (docs/method.md, students and FLOPs).

    timm ``mobilenetv2_100`` without the final 1x1 conv to 1280 (``features_only`` stops at
    the 320-channel block). At ``output_stride=32`` (default, the paper's) the strides are
    kept and the depthwise 3x3 convs of the blocks that torchvision calls ``features[15]``,
    ``features[16]``, ``features[17]`` (timm ``blocks[5][1]``, ``blocks[5][2]``,
    ``blocks[6][0]``) get dilations 2, 4, 8 (padding equal to the dilation); the ASPP keeps
    the reference rates (6, 12, 18). At 16 or 8, timm removes the last strides and the same
    three blocks get dilations (2, 4, 8) at 16 and (4, 8, 16) at 8; the ASPP rates are
    scaled. Low-level projection 24 -> 24. Backbone: 1.81 M parameters, 1.53 GFLOPs at
    512x512 (stride 32).

    ImageNet weights: ``pretrained=True`` loads timm's ``mobilenetv2_100.ra_in1k`` (same
    layout); the reference used torchvision's ``mobilenet_v2`` weights, which
    ``backbone_weights`` takes as a torchvision-layout file (``features.18`` and the
    classifier are skipped as the head).

    Args:
        num_classes: ``K``.
        output_stride: 32 (paper), 16 or 8.
        pretrained: ImageNet weights through timm's hub (see above).
    """

    __doc__ = (__doc__ or "") + _SHARED_ARGS
    backbone_model = "mobilenetv2_100"
    pretrained_tags = (("mobilenetv2_100.ra_in1k", None),)

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
        allow_partial: bool = False,
        backbone_bn: BackboneBN = "train",
        input_norm: InputNorm = "imagenet",
    ) -> None:
        recorded = plain_init_args(locals())
        if aspp_rates is None and output_stride == 32:
            aspp_rates = (6, 12, 18)
        self._build(
            recorded, num_classes, output_stride, pretrained, head_channels,
            low_level_channels, aspp_rates, backbone_kwargs, backbone_weights, weights,
            allow_partial, backbone_bn, input_norm,
        )

    def adapt_backbone(self, output_stride: int) -> None:
        scale = max(1, 16 // output_stride)
        blocks: Any = self.backbone.blocks
        for block, dilation in zip(
            (blocks[5][1], blocks[5][2], blocks[6][0]), (2, 4, 8), strict=True
        ):
            _set_dilation(block.conv_dw, dilation * scale)


class TeacherResNet101(_Preset):
    """ResNet-101 v1c "deep" teacher T_D (docs/method.md, teachers).

    timm ``resnet101`` with ``stem_type="deep", stem_width=64`` (3->64->64->128), output
    stride 16, the three ``layer4`` blocks dilated 2, 4, 8 (``multi_grid=(1, 2, 4)``).
    Backbone: 42.62 M parameters, 59.11 GFLOPs at 512x512.

    ImageNet weights: ``pretrained=True`` loads timm's ``resnet101s.gluon_in1k`` (Gluon's
    ResNet-101 v1s: this exact deep stem and body; the reference's ``resnet101_v1c`` is also
    Gluon-converted). A torchvision ``resnet101`` file has the 7x7 stem (64 channels into
    ``layer1``, not 128): only ``layer1.0``'s later tensors onwards fit, so it loads only with
    ``allow_partial=True``.

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: ImageNet weights through timm's hub (see above).
    """

    __doc__ = (__doc__ or "") + _SHARED_ARGS
    backbone_model = "resnet101"
    preset_kwargs: ClassVar[dict[str, Any]] = {"stem_type": "deep", "stem_width": 64}
    preset_multi_grid = (1, 2, 4)
    pretrained_tags = (("resnet101s.gluon_in1k", None),)

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
        allow_partial: bool = False,
        backbone_bn: BackboneBN = "train",
        input_norm: InputNorm = "imagenet",
    ) -> None:
        recorded = plain_init_args(locals())
        self._build(
            recorded, num_classes, output_stride, pretrained, head_channels,
            low_level_channels, aspp_rates, backbone_kwargs, backbone_weights, weights,
            allow_partial, backbone_bn, input_norm,
        )


class TeacherWideResNet50(_Preset):
    """WRN-50-2 "wide" teacher T_W (docs/method.md, teachers; "wide_resnet34_2" in the reference).

    timm ``wide_resnet50_2`` (7x7 stem, Bottleneck [3, 4, 6, 3] with doubled width), output
    stride 16, ``layer4`` dilated 2, 4, 8 (``multi_grid=(1, 2, 4)``). Backbone: 66.83 M
    parameters, 91.12 GFLOPs at 512x512.

    ImageNet weights: ``pretrained=True`` loads timm's ``wide_resnet50_2.tv_in1k``
    (torchvision's weights; the reference's own checkpoint is undocumented). torchvision's
    ``wide_resnet50_2`` files have the same names and load whole.

    Args:
        num_classes: ``K``.
        output_stride: 8, 16 (paper) or 32.
        pretrained: ImageNet weights through timm's hub (see above).
    """

    __doc__ = (__doc__ or "") + _SHARED_ARGS
    backbone_model = "wide_resnet50_2"
    preset_multi_grid = (1, 2, 4)
    pretrained_tags = (("wide_resnet50_2.tv_in1k", None),)

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
        allow_partial: bool = False,
        backbone_bn: BackboneBN = "train",
        input_norm: InputNorm = "imagenet",
    ) -> None:
        recorded = plain_init_args(locals())
        self._build(
            recorded, num_classes, output_stride, pretrained, head_channels,
            low_level_channels, aspp_rates, backbone_kwargs, backbone_weights, weights,
            allow_partial, backbone_bn, input_norm,
        )
