"""BatchNorm handling for fine-tuning pretrained backbones.

Some ImageNet weights come with BatchNorm *folded* into the convolutions (the BN layers are the
identity plus a bias, e.g. the quantisation-aware MobileNet-v2 of ``docs/models.md``). They give
the pretrained function in eval mode only: in train mode BN normalises every channel with the
batch statistics, which strips the per-channel scale and shift the folded weights carry.

Two remedies, both function-preserving at the first step:

- :func:`reparametrise_batchnorm` re-estimates the statistics on real images and rewrites each
  conv + BN pair so that the eval-mode function is unchanged **and** the batch statistics match
  the running ones. With ``m`` and ``s`` the mean and standard deviation of a channel's conv output
  ``y`` on the images, and the BN's stored ``(mu, var, gamma, beta, eps)``::

      conv filter  <- filter / s                     (so the conv gives y / s)
      running_mean <- m / s,  running_var <- 1
      weight       <- gamma * s * sqrt(1 + eps) / sqrt(var + eps)
      bias         <- beta + (m - mu) * gamma / sqrt(var + eps)

  (channels that are nearly constant on the images are divided by a floor instead of ``s``,
  see :func:`reparametrise_batchnorm`).

  For folded BN (``gamma`` 1, ``mu`` 0, ``var`` 1 - eps) this is the rule of the weights'
  README: weight ``s * sqrt(1 + eps)``, bias ``beta + m``. Any BN works, not only folded ones.
- :func:`freeze_batchnorm_statistics` keeps the BN layers in eval mode (running statistics,
  affine parameters still trained).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "batchnorm_pairs",
    "freeze_batchnorm_statistics",
    "reparametrise_batchnorm",
    "shrink_batchnorm_inputs",
]


def batchnorm_pairs(module: nn.Module) -> list[tuple[nn.Conv2d, _BatchNorm]]:
    """The (conv, BN) pairs of ``module`` whose BN normalises exactly that conv's output.

    Pairs are found in module registration order: each BN goes with the last conv registered
    before it, when the conv's ``out_channels`` equals the BN's ``num_features`` (true for timm's
    ResNets and MobileNets, whose blocks register ``conv -> bn`` in forward order).

    Raises:
        ValueError: a BN has no preceding conv of its width (the rewrite would be wrong).
    """
    pairs = []
    last: tuple[str, nn.Conv2d] | None = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d):
            last = (name, child)
        elif isinstance(child, _BatchNorm):
            if last is None or last[1].out_channels != child.num_features:
                raise ValueError(
                    f"BatchNorm {name!r} ({child.num_features} channels) does not follow a conv "
                    f"of its width (last conv: {last[0] if last else None!r}); cannot pair it"
                )
            pairs.append((last[1], child))
            last = None
    return pairs


@torch.no_grad()
def _channel_moments(
    module: nn.Module, pairs: list[tuple[nn.Conv2d, _BatchNorm]], batches: Iterable[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    """Per-channel mean and std of each BN's input over ``batches`` (eval-mode forward)."""
    sums: list[list[Tensor]] = [[] for _ in pairs]

    def hook(index: int):  # type: ignore[no-untyped-def]
        def record(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            y = inputs[0].float().transpose(0, 1).flatten(1)
            stats = torch.stack([y.new_tensor(float(y.shape[1])).expand(y.shape[0]),
                                 y.sum(1), y.square().sum(1)])
            sums[index].append(stats.double())

        return record

    handles = [bn.register_forward_pre_hook(hook(i)) for i, (_, bn) in enumerate(pairs)]
    was_training = module.training
    module.eval()
    try:
        for batch in batches:
            device_type = batch.device.type
            with torch.autocast(device_type, enabled=False):
                module(batch.float())
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    moments = []
    for index, recorded in enumerate(sums):
        if not recorded:
            raise ValueError(f"BatchNorm {index} saw no input: check that `batches` is not empty")
        total = torch.stack(recorded).sum(0)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
        count, first, second = total
        mean = first / count
        var = (second / count - mean.square()).clamp_min(0.0)
        moments.append((mean.float(), var.sqrt().float()))
    return moments


@torch.no_grad()
def reparametrise_batchnorm(
    module: nn.Module, batches: Iterable[Tensor], min_relative_std: float = 0.05
) -> int:
    """Re-estimate every BN's statistics on ``batches`` without changing the eval function.

    Runs ``module`` in eval mode (fp32, no autocast) over ``batches``, records each BN input's
    per-channel mean ``m`` and std ``s``, and rewrites conv and BN as in the module docstring.
    Afterwards the eval-mode output is the same (up to float rounding) and train-mode batch
    statistics are close to the running ones, so fine-tuning starts from the pretrained
    function. Under ``torch.distributed`` the statistics are summed over all processes, so every
    process gets the same weights.

    A channel that is (nearly) constant on ``batches`` (a dead ReLU before it, or a dilated conv
    that sees mostly padding on small images) is divided by ``c = max(s, min_relative_std *
    median s of its layer)`` instead of ``s``, with running variance ``(s / c)^2``: dividing by a
    tiny ``s`` would blow its filter up by ``1 / s`` and make the channel explode as soon as
    training revives it.

    Args:
        module: a network (e.g. a backbone) whose BN layers each follow their conv
            (:func:`batchnorm_pairs`).
        batches: ``(B, 3, H, W)`` image batches, normalised as ``module`` expects.
        min_relative_std: the floor of the divisor, relative to the layer's median std.

    Returns:
        The number of conv + BN pairs rewritten.
    """
    pairs = batchnorm_pairs(module)
    moments = _channel_moments(module, pairs, batches)
    for (conv, bn), (m, s) in zip(pairs, moments, strict=True):
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("reparametrise_batchnorm needs BN layers with running statistics")
        floor = (min_relative_std * s.median()).clamp_min(1e-6)
        c = torch.maximum(s, floor)
        var = (s / c).square()
        gamma = bn.weight if bn.weight is not None else torch.ones_like(s)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(s)
        inv_std = (bn.running_var + bn.eps).rsqrt()
        new_weight = gamma * c * (var + bn.eps).sqrt() * inv_std
        new_bias = beta + (m - bn.running_mean) * gamma * inv_std
        conv.weight.div_(c.view(-1, *([1] * (conv.weight.dim() - 1))))
        if conv.bias is not None:
            conv.bias.div_(c)
        bn.running_mean.copy_(m / c)
        bn.running_var.copy_(var)
        if bn.weight is not None and bn.bias is not None:
            bn.weight.copy_(new_weight)
            bn.bias.copy_(new_bias)
        elif not (torch.allclose(new_weight, torch.ones_like(s)) and torch.allclose(
            new_bias, torch.zeros_like(s))):
            raise ValueError("reparametrise_batchnorm needs affine BN layers (`affine=True`)")
    return len(pairs)


def freeze_batchnorm_statistics(module: nn.Module) -> None:
    """Put every BN of ``module`` in eval mode: running statistics used and not updated.

    The affine weight and bias keep their ``requires_grad``. Call it again after each
    ``module.train()`` (:class:`~mgd_lightning.models.DeepLabV3Plus` does, with
    ``backbone_bn="frozen"``).
    """
    for child in module.modules():
        if isinstance(child, _BatchNorm):
            child.eval()


@torch.no_grad()
def shrink_batchnorm_inputs(
    backbone: nn.Module, max_std: float = 16.0, max_weight: float = 256.0,
    max_bn_weight: float = 4096.0,
) -> int:
    """Scale down conv + BN channels with huge values, keeping the eval-mode function exactly.

    Fine-tuning a re-parametrised backbone (:func:`reparametrise_batchnorm`) can leave a few
    nearly dead channels with conv filters and running variances far beyond fp16's range
    (filters of 3e7, variances of 2e9 were seen), although the BN output is ordinary. For each
    channel whose running std exceeds ``max_std`` or whose filter exceeds ``max_weight`` in
    absolute value, with ``k`` the larger of the two ratios (capped so that the BN weight stays
    within ``max_bn_weight``)::

        conv filter, conv bias, running_mean <- / k,    running_var v <- v / k^2
        BN weight gamma <- gamma * sqrt(v + k^2 eps) / sqrt(v + eps)

    In eval mode BN then gives exactly ``gamma (y - mu) / sqrt(v + eps)`` as before (up to float
    rounding). Use it on a network used for inference (a teacher before it is stored in fp16):
    its train-mode behaviour is not kept.

    Args:
        backbone: a module whose BN layers each follow their conv (:func:`batchnorm_pairs`).
        max_std: the largest running std left unchanged.
        max_weight: the largest absolute filter value left unchanged.
        max_bn_weight: the largest absolute BN weight the rescaling may create.

    Returns:
        The number of channels rescaled.
    """
    count = 0
    for conv, bn in batchnorm_pairs(backbone):
        if bn.running_mean is None or bn.running_var is None or bn.weight is None:
            continue
        var = bn.running_var.float()
        peak = conv.weight.detach().abs().flatten(1).amax(1).float()
        k = torch.maximum(var.sqrt() / max_std, peak / max_weight)
        # ... but never so large that the BN weight grows past max_bn_weight (gamma * gain)
        room = (max_bn_weight / bn.weight.detach().abs().float().clamp_min(1e-12)).square()
        k_cap = ((room * (var + bn.eps) - var) / bn.eps).clamp_min(1.0).sqrt()
        k = torch.minimum(k, k_cap).clamp_min(1.0)
        big = k > 1.0
        if not bool(big.any()):
            continue
        gain = ((var + k.square() * bn.eps) / (var + bn.eps)).sqrt()
        conv.weight.div_(k.view(-1, *([1] * (conv.weight.dim() - 1))).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.div_(k.to(conv.bias.dtype))
        bn.running_mean.div_(k.to(bn.running_mean.dtype))
        bn.running_var.div_(k.square().to(bn.running_var.dtype))
        bn.weight.mul_(gain.to(bn.weight.dtype))
        count += int(big.sum())
    return count
