"""The two frozen teachers of MGD (docs/method.md#teachers, A.4).

:class:`TeacherPair` holds the "deep" teacher T_D (feeds the image-level loss) and the "wide"
teacher T_W (feeds the region-level loss); both feed the pixel-level loss. It is a plain
``nn.Module``: the training module only calls it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mgd_lightning.models.outputs import SegmentationOutput
from mgd_lightning.models.shipped import load_shipped_teacher
from mgd_lightning.models.spec import network_from_checkpoint
from mgd_lightning.models.weights import (
    load_network_weights,
    load_state_dict_strict,
    sha256_file,
)

__all__ = ["BNMode", "TeacherName", "TeacherOutputs", "TeacherPair"]

TeacherName = Literal["deep", "wide"]
BNMode = Literal["eval", "batch"]
_AutocastName = Literal["auto", "bfloat16", "float16"]
_NAMES: tuple[TeacherName, ...] = ("deep", "wide")


class TeacherOutputs(NamedTuple):
    """Outputs of :meth:`TeacherPair.forward`, one list per teacher, in the order of the views.

    Attributes:
        deep: ``[SegmentationOutput(logits (B_i, K, H_i, W_i), features (B_i, C, H_i/4,
            W_i/4)), ...]`` of the deep teacher, or ``None`` if it was not asked for.
        wide: the same for the wide teacher.
    """

    deep: list[SegmentationOutput] | None
    wide: list[SegmentationOutput] | None


@contextlib.contextmanager
def _batch_statistics(module: nn.Module) -> Iterator[None]:
    """Make every BatchNorm of ``module`` normalise with batch statistics, buffers untouched.

    Each BN is put in training mode with ``track_running_stats=False`` (so neither the
    running mean/var nor ``num_batches_tracked`` is read or written), then restored.
    """
    saved: list[tuple[_BatchNorm, bool, bool]] = []
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            saved.append((m, m.training, m.track_running_stats))
            m.training = True
            m.track_running_stats = False
    try:
        yield
    finally:
        for m, training, tracking in saved:
            m.training = training
            m.track_running_stats = tracking


class TeacherPair(nn.Module):
    """Two frozen teachers, locked in eval mode, run without building a graph.

    Parameters have ``requires_grad=False``; ``.train()`` on the pair (or on a parent module)
    leaves both teachers in eval mode; every forward runs under ``torch.inference_mode()`` and
    the outputs are converted (to the input dtype) or copied outside it, so they are ordinary
    tensors that losses such as ``F.mse_loss`` can save for backward (an inference tensor
    cannot be). Keep the pair's parameters out of the optimizer.

    Args:
        deep: T_D, the deep teacher (e.g. :class:`~mgd_lightning.models.TeacherResNet101`);
            its logits feed the image-level and pixel-level losses. Any module returning
            ``SegmentationOutput(logits, features)`` works. ``None``: rebuilt from the network
            description stored in ``deep_weights`` (a checkpoint of this library's modules).
        wide: T_W, the wide teacher (e.g. :class:`~mgd_lightning.models.TeacherWideResNet50`);
            its features feed the region-level loss, its logits the pixel-level loss.
        bn_mode: ``"eval"`` normalises with the stored running statistics (clean default).
            ``"batch"`` reproduces the reference, whose teachers ran in train mode: BatchNorm
            uses the statistics of each view's batch (one pass per view, as the reference's
            separate calls; global across processes with ``SyncBatchNorm``), while the stored
            running statistics stay unchanged (the reference let them drift; here they are
            not updated). Needs more than one image per view (the ASPP pooling branch
            normalises a ``(B, C, 1, 1)`` map).
        autocast_dtype: ``"bfloat16"``/``"float16"`` (or a ``torch.dtype``) to run the
            teachers under ``torch.autocast`` on the input's device type; outputs are cast
            back to the input dtype. ``None``: no autocast (fp32). ``"auto"`` (default) picks
            bfloat16 where the device computes it natively: CUDA devices with native bf16
            (Ampere and later) and CPUs whose oneDNN supports bf16 (AVX512-BF16 or AMX);
            fp32 elsewhere. See ``docs/performance.md`` for speed and agreement.
        deep_weights: a local file for ``deep`` (a state dict or a checkpoint of this
            library's training modules), loaded strictly with
            :func:`~mgd_lightning.models.load_network_weights` (prefix ``"auto"``).
        wide_weights: the same for ``wide``.
        concat_views: with ``bn_mode="eval"``, run the views of one call as one batch (one
            pass per teacher; the same outputs as separate passes). ``bn_mode="batch"`` always
            runs one pass per view, so that each view gets its own statistics.
        shipped: load both teachers from a shipped set instead (see :meth:`from_shipped`);
            excludes ``deep``, ``wide`` and the weight files.
        channels_last: keep the teachers' weights in ``torch.channels_last`` memory format
            and pass each input in it. Same function up to float rounding; on this project's
            CPU it made the main job's MGD training step about 1.2x faster
            (``docs/performance.md``). Off by default.

    Attributes:
        sources: ``{"deep": {"path": ..., "sha256": ...} | None, "wide": ...}``, the file
            each teacher was loaded from, ``None`` when its weights came from memory.

    Shape:
        - views: a sequence of ``(B_i, 3, H_i, W_i)`` images.
        - output: :class:`TeacherOutputs`; logits ``(B_i, K, H_i, W_i)`` and features
          ``(B_i, C, H_i/4, W_i/4)`` for each view and teacher asked for.

    Examples:
        >>> import torch
        >>> from mgd_lightning.models import DeepLabV3Plus
        >>> def tiny():
        ...     return DeepLabV3Plus("resnet10t", num_classes=3, head_channels=16)
        >>> pair = TeacherPair(tiny(), tiny())
        >>> labeled, unlabeled = torch.zeros(2, 3, 32, 32), torch.zeros(4, 3, 32, 32)
        >>> out = pair([labeled, unlabeled])
        >>> [tuple(o.logits.shape) for o in out.deep]
        [(2, 3, 32, 32), (4, 3, 32, 32)]
        >>> out.wide[1].features.requires_grad, pair.train().deep.training
        (False, False)
    """

    def __init__(
        self,
        deep: nn.Module | None = None,
        wide: nn.Module | None = None,
        bn_mode: BNMode = "eval",
        autocast_dtype: _AutocastName | torch.dtype | None = "auto",
        deep_weights: str | os.PathLike[str] | None = None,
        wide_weights: str | os.PathLike[str] | None = None,
        concat_views: bool = True,
        shipped: str | os.PathLike[str] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        shipped_sources: dict[str, dict[str, str] | None] = {"deep": None, "wide": None}
        if shipped is not None:
            given = [n for n, v in (("deep", deep), ("wide", wide), ("deep_weights", deep_weights),
                                    ("wide_weights", wide_weights)) if v is not None]
            if given:
                raise ValueError(
                    f"give either `shipped` or the teachers ({', '.join(given)}), not both"
                )
            deep, shipped_sources["deep"] = load_shipped_teacher("deep", shipped)
            wide, shipped_sources["wide"] = load_shipped_teacher("wide", shipped)
        deep = _network_or_rebuilt("deep", deep, deep_weights)
        wide = _network_or_rebuilt("wide", wide, wide_weights)
        if bn_mode not in ("eval", "batch"):
            raise ValueError(f"`bn_mode` must be 'eval' or 'batch', got {bn_mode!r}")
        for name, net in (("deep", deep), ("wide", wide)):
            if not isinstance(net, nn.Module):
                raise ValueError(f"`{name}` must be an nn.Module, got {type(net).__name__}")
        self.deep = deep
        self.wide = wide
        self.bn_mode: BNMode = bn_mode
        self.autocast_dtype: torch.dtype | Literal["auto"] | None = self._parse_dtype(
            autocast_dtype
        )
        self.concat_views = bool(concat_views)
        self.sources: dict[str, dict[str, str] | None] = shipped_sources
        if deep_weights is not None:
            self.load_teacher_weights("deep", deep_weights)
        if wide_weights is not None:
            self.load_teacher_weights("wide", wide_weights)
        self.channels_last = bool(channels_last)
        if self.channels_last:  # loading later copies into these tensors, keeping the format
            self.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.train(self.training)
        _ = self.num_classes  # checks that both teachers agree

    @classmethod
    def from_checkpoints(
        cls,
        deep: str | os.PathLike[str],
        wide: str | os.PathLike[str],
        **kwargs: Any,
    ) -> TeacherPair:
        """Build both teachers from checkpoints of this library's training modules alone.

        The architectures come from the checkpoints' network descriptions, the weights are
        loaded strictly, and each file's path and SHA-256 are recorded in ``sources``.

        Args:
            deep: checkpoint of the deep teacher (e.g. from ``CPSModule`` or ``SupervisedModule``).
            wide: checkpoint of the wide teacher.
            **kwargs: other :class:`TeacherPair` arguments (``bn_mode``, ``autocast_dtype``...).
        """
        return cls(None, None, deep_weights=deep, wide_weights=wide, **kwargs)

    @classmethod
    def from_shipped(
        cls, source: str | os.PathLike[str] = "synthetic", **kwargs: Any
    ) -> TeacherPair:
        """Load a teacher set shipped in the package (or any folder in its format).

        Each weight file's size and SHA-256 are checked against the set's manifest before it
        is read (:mod:`mgd_lightning.models.shipped`); ``sources`` records them.

        Args:
            source: a shipped set's name (``"synthetic"``: the teachers of the embedded
                synthetic scenes), a set folder, or its ``manifest.json``.
            **kwargs: other :class:`TeacherPair` arguments (``bn_mode``, ``autocast_dtype``...).
        """
        return cls(shipped=source, **kwargs)

    @staticmethod
    def _parse_dtype(
        value: _AutocastName | torch.dtype | None,
    ) -> torch.dtype | Literal["auto"] | None:
        if value is None or isinstance(value, torch.dtype) or value == "auto":
            return value
        table = {"bfloat16": torch.bfloat16, "float16": torch.float16}
        if value not in table:
            raise ValueError(
                f"`autocast_dtype` must be 'auto', 'bfloat16', 'float16', a torch.dtype or "
                f"None, got {value!r}"
            )
        return table[value]

    def resolved_autocast_dtype(self, device: torch.device | str) -> torch.dtype | None:
        """The autocast dtype used on ``device`` (``"auto"`` resolved; ``None``: fp32)."""
        if self.autocast_dtype != "auto":
            return self.autocast_dtype
        return _native_bfloat16(torch.device(device))

    @classmethod
    def from_state_dicts(
        cls,
        deep: nn.Module,
        wide: nn.Module,
        deep_state: Mapping[str, Tensor],
        wide_state: Mapping[str, Tensor],
        **kwargs: Any,
    ) -> TeacherPair:
        """Build a pair and load both teachers from in-memory state dicts, strictly.

        Args:
            deep: the deep teacher network.
            wide: the wide teacher network.
            deep_state: its state dict (keys exactly those of ``deep.state_dict()``).
            wide_state: the same for ``wide``.
            **kwargs: other :class:`TeacherPair` arguments (``bn_mode``, ...).

        Returns:
            The pair; ``sources`` is ``None`` for both teachers.
        """
        pair = cls(deep, wide, **kwargs)
        pair.load_teacher_weights("deep", deep_state)
        pair.load_teacher_weights("wide", wide_state)
        return pair

    def load_teacher_weights(
        self,
        name: TeacherName,
        source: str | os.PathLike[str] | Mapping[str, Tensor],
        prefix: str | None = "auto",
    ) -> None:
        """Load one teacher's weights strictly, from a file or a state dict.

        Args:
            name: ``"deep"`` or ``"wide"``.
            source: a file path (its path and SHA-256 go to ``sources[name]``) or a state
                dict (``sources[name]`` becomes ``None``).
            prefix: for files, see :func:`~mgd_lightning.models.load_network_weights`.

        Raises:
            ValueError: unknown ``name``, or the weights do not match the teacher.
        """
        teacher = self._teacher(name)
        if isinstance(source, Mapping):
            load_state_dict_strict(teacher, source, source=f"a state dict for the {name} teacher")
            self.sources[name] = None
        else:
            load_network_weights(teacher, source, prefix=prefix)
            self.sources[name] = {"path": os.fspath(source), "sha256": sha256_file(source)}
        teacher.requires_grad_(False)

    def _teacher(self, name: str) -> nn.Module:
        if name not in _NAMES:
            raise ValueError(f"teacher name must be 'deep' or 'wide', got {name!r}")
        module: nn.Module = getattr(self, name)
        return module

    @property
    def num_classes(self) -> int:
        """``K``, the number of classes of both teachers.

        Raises:
            ValueError: the teachers disagree, or a teacher has no ``num_classes``.
        """
        counts = {name: getattr(self._teacher(name), "num_classes", None) for name in _NAMES}
        if not all(isinstance(k, int) for k in counts.values()):
            raise ValueError(f"both teachers need an integer `num_classes`, got {counts}")
        if counts["deep"] != counts["wide"]:
            raise ValueError(
                f"the teachers output different numbers of classes: deep {counts['deep']}, "
                f"wide {counts['wide']}"
            )
        k: int = counts["deep"]  # type: ignore[assignment]
        return k

    def train(self, mode: bool = True) -> TeacherPair:
        """Set the pair's flag; the teachers always stay in eval mode."""
        super().train(mode)
        self.deep.eval()
        self.wide.eval()
        return self

    def _context(self, x: Tensor, teacher: nn.Module) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        dtype = self.resolved_autocast_dtype(x.device)
        if dtype is not None:
            stack.enter_context(torch.autocast(x.device.type, dtype=dtype))
        if self.bn_mode == "batch":
            stack.enter_context(_batch_statistics(teacher))
        return stack

    def run(self, name: TeacherName, x: Tensor) -> SegmentationOutput:
        """Run one teacher on one batch.

        Args:
            name: ``"deep"`` or ``"wide"``.
            x: ``(B, 3, H, W)`` images.

        Returns:
            ``SegmentationOutput(logits (B, K, H, W), features (B, C, H/4, W/4))``, without
            a graph, in ``x.dtype``.
        """
        teacher = self._teacher(name)
        teacher.eval()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._context(x, teacher):
            logits, features = teacher(x)
        # Outside inference mode: a dtype conversion or a copy gives ordinary tensors.
        return SegmentationOutput(_ordinary(logits, x.dtype), _ordinary(features, x.dtype))

    def forward(
        self, views: Tensor | Sequence[Tensor], teachers: Sequence[TeacherName] = _NAMES
    ) -> TeacherOutputs:
        """Run the chosen teachers over one batch or several views, one pass per teacher.

        Views with the same ``(3, H, W)`` are concatenated along the batch and the outputs
        split back; views of different sizes (or ``concat_views=False``, or
        ``bn_mode="batch"``: per-view statistics) get separate passes.
        One batch ``pair(x)`` is one view: ``pair(x).deep[0].logits``.

        Args:
            views: a ``(B, 3, H, W)`` batch, or a sequence of ``(B_i, 3, H_i, W_i)`` image
                batches, e.g. labeled, unlabeled A and B.
            teachers: which teachers to run, any of ``"deep"`` and ``"wide"``.

        Returns:
            :class:`TeacherOutputs` with one :class:`SegmentationOutput` per view for each
            teacher asked for, ``None`` for the others.

        Raises:
            ValueError: ``views`` is empty or not 4-D tensors, or a teacher name is unknown.
        """
        views = [views] if isinstance(views, Tensor) else list(views)
        if not views or not all(isinstance(v, Tensor) and v.dim() == 4 for v in views):
            shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in views]
            raise ValueError(
                "`views` must be a (B, 3, H, W) tensor or a non-empty sequence of them, got "
                f"{shapes}"
            )
        unknown = [t for t in teachers if t not in _NAMES]
        if unknown:
            raise ValueError(f"`teachers` must be among 'deep', 'wide'; got {unknown!r}")
        same = len({tuple(v.shape[1:]) for v in views}) == 1
        results: dict[str, list[SegmentationOutput] | None] = {"deep": None, "wide": None}
        for name in dict.fromkeys(teachers):
            if self.concat_views and self.bn_mode == "eval" and same and len(views) > 1:
                out = self.run(name, torch.cat(views, dim=0))
                sizes = [v.shape[0] for v in views]
                results[name] = [
                    SegmentationOutput(logits, features)
                    for logits, features in zip(
                        out.logits.split(sizes), out.features.split(sizes), strict=True
                    )
                ]
            else:
                results[name] = [self.run(name, v) for v in views]
        return TeacherOutputs(results["deep"], results["wide"])

    def extra_repr(self) -> str:
        dtype = self.autocast_dtype if self.autocast_dtype in (None, "auto") else str(
            self.autocast_dtype
        )
        return (
            f"bn_mode={self.bn_mode!r}, autocast_dtype={dtype}, concat_views={self.concat_views}"
            f", channels_last={self.channels_last}"
        )


def _network_or_rebuilt(
    name: str, network: nn.Module | None, weights: str | os.PathLike[str] | None
) -> nn.Module:
    """``network`` itself, or the network described in the checkpoint ``weights``."""
    if network is not None:
        return network
    if weights is None:
        raise ValueError(
            f"the {name} teacher needs a network (`{name}`) or a checkpoint of this library's "
            f"training modules (`{name}_weights`) to rebuild it from"
        )
    return network_from_checkpoint(weights)


def _ordinary(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """``tensor`` in ``dtype`` as an ordinary (non-inference) tensor, copied at most once."""
    if tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor.clone()


def _native_bfloat16(device: torch.device) -> torch.dtype | None:
    """bfloat16 where ``device`` computes it natively, else ``None`` (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None
    if device.type == "cpu":
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return torch.bfloat16 if supported is not None and bool(supported()) else None
    return None
