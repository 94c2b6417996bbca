"""DeepLabv3+ on timm backbones, with the head of the MGD reference (docs/method.md#head).

The backbone is any timm model that supports ``features_only``; the head takes its stride-4
feature (low level) and its deepest feature (high level). Every network returns a
:class:`~mgd_lightning.models.SegmentationOutput` ``(logits, features)``.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mgd_lightning.checks import check_positive_int
from mgd_lightning.models.backbone_weights import BackboneLoadReport, load_backbone_file
from mgd_lightning.models.batchnorm import freeze_batchnorm_statistics, reparametrise_batchnorm
from mgd_lightning.models.outputs import SegmentationOutput
from mgd_lightning.models.weights import load_network_weights

__all__ = ["ASPP", "BackboneBN", "DeepLabV3Plus", "DeepLabV3PlusHead", "InputNorm", "OutputStride"]

OutputStride = Literal[8, 16, 32]
BackboneBN = Literal["train", "frozen", "reparametrise"]
InputNorm = Literal["imagenet", "minus_one_one"]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_REFERENCE_RATES = (6, 12, 18)  # at output stride 16


def plain_init_args(local_variables: dict[str, Any]) -> dict[str, Any]:
    """A constructor's arguments (its ``locals()`` on entry) as plain data for checkpoints."""
    args = {}
    for key, value in local_variables.items():
        if key in ("self", "__class__"):
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, tuple):
            value = list(value)
        args[key] = value
    return args


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of the reference (docs/method.md#head, step 1).

    Four bias-free branches (1x1 and three dilated 3x3) are concatenated, then
    BN -> LeakyReLU -> 1x1 conv. The image-pooling branch (global average pooling -> 1x1 conv
    -> BN -> LeakyReLU -> 1x1 conv) is broadcast and *added*, then BN -> LeakyReLU.

    Args:
        in_channels: ``C_in``, channels of the deepest backbone feature.
        channels: ``C``, width of every branch and of the output (256 in the paper).
        rates: dilations of the three 3x3 branches (padding equals the dilation).

    Shape:
        - x: ``(B, C_in, h, w)``.
        - output: ``(B, C, h, w)``.
    """

    def __init__(
        self, in_channels: int, channels: int = 256, rates: Sequence[int] = _REFERENCE_RATES
    ) -> None:
        super().__init__()
        rates = tuple(rates)
        if len(rates) != 3 or any(
            isinstance(r, bool) or not isinstance(r, int) or r <= 0 for r in rates
        ):
            raise ValueError(f"`rates` must be three positive integers, got {rates!r}")
        self.rates = rates
        self.map_convs = nn.ModuleList(
            [nn.Conv2d(in_channels, channels, 1, bias=False)]
            + [
                nn.Conv2d(in_channels, channels, 3, padding=r, dilation=r, bias=False)
                for r in rates
            ]
        )
        self.map_bn = nn.BatchNorm2d(channels * 4)
        self.red_conv = nn.Conv2d(channels * 4, channels, 1, bias=False)
        self.pool_conv = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.pool_bn = nn.BatchNorm2d(channels)
        self.pool_red_conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.red_bn = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([conv(x) for conv in self.map_convs], dim=1)
        out = self.red_conv(self.act(self.map_bn(out)))
        pool = x.mean(dim=(2, 3), keepdim=True)
        pool = self.pool_red_conv(self.act(self.pool_bn(self.pool_conv(pool))))
        return self.act(self.red_bn(out + pool))


class DeepLabV3PlusHead(nn.Module):
    """ASPP plus the DeepLabv3+ decoder (docs/method.md#head, steps 1-3); no classifier.

    Args:
        low_in_channels: ``C_low``, channels of the stride-4 backbone feature.
        high_in_channels: ``C_high``, channels of the deepest backbone feature.
        channels: ``C``, ASPP and decoder width (256 in the paper).
        low_level_channels: width of the 1x1 projection of the low-level feature (48 for
            ResNets, 24 for MobileNet-v2 in the paper).
        rates: ASPP dilations.

    Shape:
        - low: ``(B, C_low, H/4, W/4)``.
        - high: ``(B, C_high, H/s, W/s)`` with ``s`` the output stride.
        - output: ``(B, C, H/4, W/4)`` decoder features.
    """

    def __init__(
        self,
        low_in_channels: int,
        high_in_channels: int,
        channels: int = 256,
        low_level_channels: int = 48,
        rates: Sequence[int] = _REFERENCE_RATES,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(high_in_channels, channels, rates)
        self.reduce = nn.Sequential(
            nn.Conv2d(low_in_channels, low_level_channels, 1, bias=False),
            nn.BatchNorm2d(low_level_channels),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(channels + low_level_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        high = self.aspp(high)
        low = self.reduce(low)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.decoder(torch.cat([high, low], dim=1))


def _unknown_backbone(name: str) -> ValueError:
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=8, cutoff=0.6)
    stem = name.split(".")[0].rstrip("0123456789_")
    close += [n for n in timm.list_models(f"*{stem}*") if n not in close][: 8 - len(close)]
    hint = f" Close timm names: {', '.join(close)}." if close else ""
    return ValueError(f"`backbone` {name!r} is not a timm model.{hint}")


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    """Give a 3x3 conv ``dilation`` with padding equal to it (output size unchanged)."""
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation)


def _conv3x3s(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ on a timm backbone, with the MGD reference head (docs/method.md#head).

    Args:
        backbone: a timm model name (``timm.list_models()``) that supports
            ``features_only`` and has a stride-4 feature, e.g. ``"resnet18"``,
            ``"mobilenetv2_100"``.
        num_classes: ``K``, number of classes (> 0).
        output_stride: stride of the deepest feature: 8, 16 or 32. Passed to timm (which
            replaces the last strides by dilations) unless it is 32.
        pretrained: load timm's ImageNet weights for the backbone (downloads them: needs
            internet, or a filled Hugging Face cache with ``HF_HUB_OFFLINE=1``).
        head_channels: ``C``, ASPP and decoder width (256 in the paper).
        low_level_channels: width of the low-level projection; ``None`` means 48, or the
            low-level feature's own width when smaller (24 for MobileNet-v2, as the paper).
        aspp_rates: ASPP dilations; ``None`` means (6, 12, 18) scaled by
            ``16 / output_stride`` (12, 24, 36 at stride 8; 3, 6, 9 at stride 32).
        multi_grid: for ResNet-family backbones (a ``layer4`` stage), the dilation of every
            3x3 conv of block ``i`` of ``layer4`` becomes ``(32 // output_stride) *
            multi_grid[i]`` (padding equal to it); one entry per block. ``None`` keeps timm's
            dilations. The paper's teachers use ``(1, 2, 4)`` at stride 16 (dilations 2, 4, 8).
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (e.g.
            ``{"stem_type": "deep", "stem_width": 32}``).
        backbone_weights: a local safetensors/torch file with the backbone's weights, in
            timm's or torchvision's layout or this library's (a network or a training
            checkpoint), mapped by name (:mod:`~mgd_lightning.models.backbone_weights`). The
            classification head is skipped; a load that would leave backbone tensors random
            is an error unless ``allow_partial``. A short report is printed.
        weights: a local file with the whole network (a state dict of this class or a
            checkpoint of this library's training modules), loaded strictly with
            :func:`~mgd_lightning.models.load_network_weights`; applied last.
        allow_partial: let ``backbone_weights`` leave some backbone tensors random (they are
            listed in the report).
        backbone_bn: BatchNorm of the backbone while training. ``"train"``: ordinary batch
            statistics. ``"frozen"``: the backbone's BN layers stay in eval mode (running
            statistics, affine parameters trained). ``"reparametrise"``: at the first
            training forward, the statistics are re-estimated on that batch and conv + BN
            rewritten so the function is unchanged
            (:func:`~mgd_lightning.models.reparametrise_batchnorm`), then ordinary batch
            statistics; for weights with folded BatchNorm. Done once (a saved flag).
        input_norm: what the backbone weights expect. Inputs always come normalised with
            ImageNet mean/std (the datamodules do it); ``"minus_one_one"`` converts them to
            ``x / 127.5 - 1`` (RGB in [-1, 1]) inside the network, for weights trained so
            (e.g. TensorFlow's MobileNets); ``"imagenet"`` leaves them.

    Attributes:
        backbone: the timm ``features_only`` network.
        head: :class:`DeepLabV3PlusHead`.
        classifier: the 1x1 conv ``C -> K`` (with bias).
        num_classes: ``K``.
        output_stride: stride of the deepest feature.
        feature_channels: ``C`` of ``features``.

    Shape:
        - x: ``(B, 3, H, W)`` normalised images.
        - output: :class:`~mgd_lightning.models.SegmentationOutput` with logits
          ``(B, K, H, W)`` and features ``(B, C, H/4, W/4)``.

    Examples:
        >>> import torch
        >>> net = DeepLabV3Plus("resnet10t", num_classes=3, head_channels=16).eval()
        >>> logits, features = net(torch.zeros(1, 3, 64, 64))
        >>> tuple(logits.shape), tuple(features.shape)
        ((1, 3, 64, 64), (1, 16, 16, 16))
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        output_stride: OutputStride = 16,
        pretrained: bool = False,
        head_channels: int = 256,
        low_level_channels: int | None = None,
        aspp_rates: tuple[int, int, int] | None = None,
        multi_grid: tuple[int, ...] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_weights: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        allow_partial: bool = False,
        backbone_bn: BackboneBN = "train",
        input_norm: InputNorm = "imagenet",
    ) -> None:
        recorded = plain_init_args(locals())
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("head_channels", head_channels)
        if backbone_bn not in ("train", "frozen", "reparametrise"):
            raise ValueError(
                f"`backbone_bn` must be 'train', 'frozen' or 'reparametrise', got {backbone_bn!r}"
            )
        if input_norm not in ("imagenet", "minus_one_one"):
            raise ValueError(
                f"`input_norm` must be 'imagenet' or 'minus_one_one', got {input_norm!r}"
            )
        if low_level_channels is not None:
            check_positive_int("low_level_channels", low_level_channels)
        if output_stride not in (8, 16, 32) or isinstance(output_stride, bool):
            raise ValueError(f"`output_stride` must be 8, 16 or 32, got {output_stride!r}")
        if not isinstance(backbone, str) or not timm.is_model(backbone):
            raise _unknown_backbone(str(backbone))
        kwargs = dict(backbone_kwargs or {})
        reserved = {"features_only", "pretrained", "output_stride", "out_indices"} & set(kwargs)
        if reserved:
            raise ValueError(
                f"`backbone_kwargs` must not set {sorted(reserved)}: use the constructor "
                "arguments (`pretrained`, `output_stride`) instead"
            )
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        try:
            self.backbone = timm.create_model(
                backbone, pretrained=pretrained, features_only=True, **kwargs
            )
        except TypeError as err:
            raise ValueError(
                f"timm could not build `backbone` {backbone!r} with features_only=True and "
                f"{kwargs}: {err}"
            ) from err
        info: Any = self.backbone.feature_info
        reductions: list[int] = list(info.reduction())
        channels: list[int] = list(info.channels())
        if reductions[-1] != output_stride:
            raise ValueError(
                f"`backbone` {backbone!r} has output stride {reductions[-1]}, not the requested "
                f"`output_stride`={output_stride} (timm may not support dilation for it)"
            )
        if 4 not in reductions:
            raise ValueError(
                f"`backbone` {backbone!r} has no stride-4 feature (strides {reductions}); "
                "DeepLabv3+ needs one for its decoder"
            )
        self._low_index = reductions.index(4)
        low_in = channels[self._low_index]
        if low_level_channels is None:
            low_level_channels = min(48, low_in)
        rates: tuple[int, ...] = (
            tuple(max(1, r * 16 // output_stride) for r in _REFERENCE_RATES)
            if aspp_rates is None
            else tuple(aspp_rates)
        )
        if multi_grid is not None:
            self._apply_multi_grid(tuple(multi_grid), output_stride)

        self.backbone_name = backbone
        self.num_classes = num_classes
        self.output_stride: int = output_stride
        self.feature_channels = head_channels
        self.head = DeepLabV3PlusHead(
            low_in, channels[-1], head_channels, low_level_channels, rates
        )
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        self.init_head()
        self.backbone_kwargs = kwargs
        self.allow_partial = bool(allow_partial)
        self.backbone_bn: BackboneBN = backbone_bn
        if backbone_bn == "reparametrise":
            #: Whether the backbone BN was re-parametrised (saved, so a resume skips it).
            self.register_buffer("bn_reparametrised", torch.zeros((), dtype=torch.bool))
        self.input_norm: InputNorm = input_norm
        mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
        # ImageNet-normalised x -> x * 2 std + (2 mean - 1) = RGB/127.5 - 1.
        self.register_buffer("_input_scale", (2 * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_input_shift", (2 * mean - 1).view(1, 3, 1, 1), persistent=False)
        self.backbone_load_reports: list[BackboneLoadReport] = []
        if backbone_weights is not None:
            self.load_backbone_weights(backbone_weights)
        if weights is not None:
            load_network_weights(self, weights)
        if backbone_bn == "frozen":
            # Lightning (>= 2.2) keeps each module's mode as built and does not call
            # ``.train()`` at fit start, so freeze here as well as in ``train()``.
            freeze_batchnorm_statistics(self.backbone)
        #: Constructor arguments as plain data, so checkpoints can rebuild the network
        #: (:func:`mgd_lightning.models.spec.network_spec`). Presets overwrite it with theirs.
        self.init_args: dict[str, Any] = recorded

    #: Appended to the error of a backbone load that would leave tensors random.
    partial_load_hint: ClassVar[str] = ""
    _input_scale: Tensor
    _input_shift: Tensor
    bn_reparametrised: Tensor

    def _apply_multi_grid(self, grid: tuple[int, ...], output_stride: int) -> None:
        stage = getattr(self.backbone, "layer4", None)
        if not isinstance(stage, nn.Sequential):
            raise ValueError("`multi_grid` needs a ResNet-family backbone with a `layer4` stage")
        if len(grid) != len(stage) or any(
            isinstance(g, bool) or not isinstance(g, int) or g <= 0 for g in grid
        ):
            raise ValueError(
                f"`multi_grid` must hold {len(stage)} positive integers (one per block of "
                f"layer4), got {grid!r}"
            )
        base = 32 // output_stride
        for block, g in zip(stage, grid, strict=True):
            for conv in _conv3x3s(block):
                _set_dilation(conv, base * g)

    def init_head(self) -> None:
        """(Re-)draw the head and classifier weights (docs/method.md#teachers).

        Kaiming-normal (fan_in, relu) convs, BN weight 1 and bias 0; the classifier bias keeps
        PyTorch's default init.
        """
        for module in (self.head, self.classifier):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def load_backbone_weights(
        self, path: str | os.PathLike[str], random_prefixes: Sequence[str] = ()
    ) -> BackboneLoadReport:
        """Load the backbone from a local file, mapped by name, and print a report.

        Layouts: timm, torchvision, this library's networks and checkpoints (see
        :mod:`~mgd_lightning.models.backbone_weights`). The classification head is skipped.

        Args:
            path: a safetensors or torch file.
            random_prefixes: backbone names to leave as they are (e.g. ``("conv1.",)``).

        Returns:
            The load report (also appended to ``backbone_load_reports``).

        Raises:
            ValueError: the file holds pickled code, or backbone tensors would stay random
                and ``allow_partial`` is false (the message names them).
        """
        report = load_backbone_file(
            self.backbone,
            path,
            self.backbone_name,
            self.backbone_kwargs,
            random_prefixes,
            self.allow_partial,
            self.partial_load_hint,
        )
        self.backbone_load_reports.append(report)
        return report

    def train(self, mode: bool = True) -> DeepLabV3Plus:
        """Set training mode; with ``backbone_bn="frozen"`` the backbone BN stays in eval."""
        super().train(mode)
        if self.backbone_bn == "frozen":
            freeze_batchnorm_statistics(self.backbone)
        return self

    def normalise_input(self, x: Tensor) -> Tensor:
        """Convert ImageNet-normalised ``x`` to what the backbone expects (``input_norm``)."""
        if self.input_norm == "minus_one_one":
            return x * self._input_scale.to(x.dtype) + self._input_shift.to(x.dtype)
        return x

    def forward(self, x: Tensor) -> SegmentationOutput:
        """Run the network.

        Args:
            x: ``(B, 3, H, W)`` images.

        Returns:
            ``SegmentationOutput(logits (B, K, H, W), features (B, C, H/4, W/4))``.
        """
        inputs = self.normalise_input(x)
        reparametrise = self.backbone_bn == "reparametrise" and self.training
        if reparametrise and not bool(self.bn_reparametrised):
            reparametrise_batchnorm(self.backbone, [inputs.detach()])
            self.bn_reparametrised.fill_(True)
        feats = self.backbone(inputs)
        features = self.head(feats[self._low_index], feats[-1])
        logits = self.classifier(features)
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return SegmentationOutput(logits, features)

    def predict(self, x: Tensor) -> Tensor:
        """Deprecated: the logits alone; use ``self(x).logits`` instead.

        In this library "predict" means class maps (``predict_step``, the prediction writer);
        logits come from the network's output (``logits_of``, ``segment``).
        """
        warnings.warn(
            "DeepLabV3Plus.predict(x) is deprecated: use net(x).logits (or "
            "mgd_lightning.models.segment(net, x) for evaluation-style inference)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.forward(x).logits

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone_name!r}, num_classes={self.num_classes}, "
            f"output_stride={self.output_stride}"
        )
