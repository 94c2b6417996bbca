"""mgd-lightning: Multi-Granularity Distillation for lightweight semi-supervised segmentation.

Importing the package sets ``NO_ALBUMENTATIONS_UPDATE=1`` (unless the user set it) so that
importing albumentations never makes a blocking network call; nothing else happens on import.
"""

import os as _os

_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

__all__ = ["__version__"]
