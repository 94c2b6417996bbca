"""The three MGD losses in a plain PyTorch training loop (no Lightning).

A toy student learns from two frozen toy teachers on random images: the pixel-level loss on a
labeled batch and on a CutMix-mixed unlabeled pair, the image-level loss against the "deep"
teacher and the region-level loss against the "wide" one. It shows how to call each loss with
named tensors; swap in your own networks (any module returning logits and decoder features).

Run: ``python examples/losses_plain_pytorch.py --steps 20``
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mgd_lightning.data.mixing import cutmix_box_masks, mix
from mgd_lightning.losses import ImageSemanticLoss, PixelConsistencyLoss, RegionContentLoss


class ToyNet(nn.Module):
    """A tiny segmentation network returning (logits at input size, stride-4 features)."""

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(x)
        logits = F.interpolate(
            self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=True
        )
        return logits, features


def main(steps: int = 20, num_classes: int = 4, size: int = 32, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    student = ToyNet(num_classes, 8)
    deep, wide = ToyNet(num_classes, 16).eval(), ToyNet(num_classes, 32).eval()
    for teacher in (deep, wide):
        teacher.requires_grad_(False)
    pixel, image, region = PixelConsistencyLoss(), ImageSemanticLoss(), RegionContentLoss()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    terms: dict[str, float] = {}
    for step in range(steps):
        x_l = torch.randn(2, 3, size, size)
        y = torch.randint(0, num_classes, (2, size, size))
        u_a, u_b = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
        box = cutmix_box_masks(2, size, size, generator=generator)
        x_m = mix(u_a, u_b, box)
        with torch.no_grad():  # frozen teachers: no graph, no gradient
            deep_l, _ = deep(x_l)
            wide_l, _ = wide(x_l)
            deep_m_logits = mix(deep(u_a)[0], deep(u_b)[0], box)
            wide_m_logits = mix(wide(u_a)[0], wide(u_b)[0], box)
            deep_on_mixed, _ = deep(x_m)
            _, wide_features = wide(x_m)
        logits_l, _ = student(x_l)
        logits_m, features_m = student(x_m)
        loss_sup = F.cross_entropy(logits_l, y)
        loss_pixel = (
            pixel(logits_l, deep_l)
            + pixel(logits_l, wide_l)
            + pixel(logits_m, deep_m_logits)
            + pixel(logits_m, wide_m_logits)
        )
        loss_image = image(logits_m, deep_on_mixed)
        loss_region = region(features_m, wide_features)
        loss = loss_sup + loss_pixel + 0.002 * loss_image + 100.0 * loss_region
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        terms = {
            "sup": loss_sup.item(),
            "pixel": loss_pixel.item(),
            "image": loss_image.item(),
            "region": loss_region.item(),
            "total": loss.item(),
        }
        if step % 5 == 0 or step == steps - 1:
            print(f"step {step:3d} " + " ".join(f"{k}={v:.4f}" for k, v in terms.items()))
    return terms


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(steps=args.steps, seed=args.seed)
