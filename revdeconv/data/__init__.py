"""Data shipped with the package: ten sample images and the author's results.

Examples
--------
>>> from revdeconv import data
>>> images = data.samples()
>>> len(images), images[0].shape, float(images[0].max()) <= 1.0
(10, (180, 250, 3), True)
>>> data.author_results()[0]
{'learning_rate': 1.0, 'filter': 'blur', 'MAE': 0.2881, 'MAE0': 0.0727, 'loss_ratio': 2.961781}
"""

import csv
import os

from ..io import load_image

__all__ = ["samples", "sample_names", "sample_paths", "author_results"]

_HERE = os.path.dirname(__file__)
_SAMPLES = os.path.join(_HERE, "samples")


def sample_paths():
    """Paths of the ten bundled sample images, in the experiment's order."""
    return [os.path.join(_SAMPLES, name) for name in sorted(os.listdir(_SAMPLES))
            if name.endswith(".png")]


def sample_names():
    """Names of the sample images (their file names without ``.png``)."""
    return [os.path.splitext(os.path.basename(path))[0] for path in sample_paths()]


def samples():
    """The ten bundled RGB sample images, ``(180, 250, 3)`` float64 in ``[0, 1]``.

    Cut from public-domain and CC0 photographs (see ``samples/SOURCES.md``
    beside this module for each one's source and licence).
    """
    return [load_image(path) for path in sample_paths()]


def author_results():
    """The paper author's raw results for all 19 learning rates.

    Returns
    -------
    list of dict
        One row per (learning rate, filter): ``learning_rate``, ``filter``
        (``"blur"``, ``"sharpening"`` or ``"edge-detection"``), ``MAE``,
        ``MAE0`` and ``loss_ratio`` (a fraction, not a percentage).
    """
    with open(os.path.join(_HERE, "author_results.tsv"), newline="") as f:
        return [{"learning_rate": float(row["learning_rate"]), "filter": row["filter"],
                 "MAE": float(row["MAE"]), "MAE0": float(row["MAE0"]),
                 "loss_ratio": round(float(row["loss_ratio_percent"]) / 100, 10)}
                for row in csv.DictReader(f, delimiter="\t")]
