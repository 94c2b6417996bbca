"""Class names and palettes of the datasets: the one home of this metadata.

A palette is one ``(r, g, b)`` triple per class, used to colour class maps (figures, training
panels, the prediction writer's PNGs). Each datamodule exposes its own as ``class_names`` and
``palette``; :func:`default_palette` (the VOC colour map) colours classes of a dataset that
names none.

Examples:
    >>> len(VOC_CLASS_NAMES), len(CITYSCAPES_PALETTE), CAMVID_CLASS_NAMES[0]
    (21, 19, 'sky')
"""

from __future__ import annotations

__all__ = [
    "CAMVID_CLASS_NAMES",
    "CAMVID_PALETTE",
    "CITYSCAPES_CLASS_NAMES",
    "CITYSCAPES_PALETTE",
    "SYNTHETIC_CLASS_NAMES",
    "SYNTHETIC_PALETTE",
    "VOC_CLASS_NAMES",
    "VOC_PALETTE",
    "default_palette",
    "voc_palette",
]

VOC_CLASS_NAMES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC colour map (bit-interleaving rule of the VOC devkit).

    Examples:
        >>> voc_palette(3)
        [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    """
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


VOC_PALETTE: tuple[tuple[int, int, int], ...] = tuple(voc_palette(21))


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Colours for ``num_classes`` classes of a dataset without its own palette (VOC's map)."""
    return voc_palette(num_classes)


CITYSCAPES_CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

CAMVID_CLASS_NAMES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
    "pedestrian", "bicyclist",
)
#: The standard CamVid 11-class colours (SegNet tutorial); void is (0, 0, 0).
CAMVID_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)

SYNTHETIC_CLASS_NAMES: tuple[str, ...] = ("background", "disc", "square", "triangle", "ring",
                                          "cross")
SYNTHETIC_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180),
)
