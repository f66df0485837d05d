"""The protocols that compare :func:`revdeconv.restore` with the paper's reverse solve and
with established methods (issue 11), shared by the experiment (``revdeconv experiment``),
``revdeconv bench`` and ``bench/restore.py``.

- stride 3: the filtered image stored as 8 bits, restored, against the nearest
  zoom and blind bicubic upsampling (OpenCV's ``cv2.resize`` where installed,
  else Pillow's ``Image.resize(..., BICUBIC)`` per channel in float mode);
- stride 1 (valid mode): :data:`BLURS`, then Gaussian noise (sigma 0.01, seed 0)
  or none, then 8-bit rounding (:func:`blurred`); scikit-image's Wiener and
  Richardson-Lucy (optional) on the blurred image padded symmetrically to the
  original size plus :data:`MARGIN` pixels (:func:`padded_filter`), their
  ``balance`` and iterations tuned over :data:`WIENER_BALANCES` and
  :data:`RL_ITERATIONS` on the same images (:func:`stride1_study`).
"""

import importlib

import numpy as np

from . import metrics
from .convolution import convolve
from .io import levels
from .restoration import restore
from .reverse import deconvolve

#: Wiener ``balance`` and Richardson-Lucy iteration counts tried; the best is reported.
WIENER_BALANCES = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01, 0.015,
                   0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)
RL_ITERATIONS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100, 200)
#: Pixels of symmetric padding beyond the original size for the FFT methods (cropped after).
MARGIN = 16
#: The noise levels of the stride-1 protocol (then 8-bit rounding).
NOISES = (0.01, 0.0)


def gaussian(size, sigma):
    """A normalized ``size`` x ``size`` Gaussian kernel."""
    axis = np.arange(size) - (size - 1) / 2
    g = np.exp(-axis ** 2 / (2 * sigma ** 2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


#: The stride-1 blurs: box 3x3, Gaussian 5x5 (sigma 1), horizontal motion over 9 pixels.
BLURS = {"box 3x3": np.ones((3, 3)) / 9, "Gaussian 5x5": gaussian(5, 1.0),
         "motion 9 px": np.ones((1, 9)) / 9}
#: PSNR margins over the tuned Wiener filter (noise 0.01) that issue 11 asks of restore.
WIENER_MARGINS = {"box 3x3": 1.0, "Gaussian 5x5": 0.8, "motion 9 px": 2.5}


def quantize(image, bits=8):
    """Round an image to ``bits``-bit levels and back, as storing it in a file does.

    ``floor(clip(v, 0, 1) * (2**bits - 1) + 0.5) / (2**bits - 1)``: round half
    up, as the author's Java code (``Math.round``) and :func:`revdeconv.io.save_image`.
    """
    return levels(image, bits) / (2 ** bits - 1)


def optional(name):
    """The module ``name``, or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def bicubic_backend():
    """What :func:`upsample` uses: ``"OpenCV"`` or ``"Pillow"``."""
    return "OpenCV" if optional("cv2") is not None else "Pillow"


def upsample(image, shape):
    """``image`` resized to ``shape`` (rows, cols) by blind bicubic interpolation,
    clipped to [0, 1]: OpenCV where installed, else Pillow per channel."""
    cv2 = optional("cv2")
    if cv2 is not None:
        out = cv2.resize(np.ascontiguousarray(image), (shape[1], shape[0]),
                         interpolation=cv2.INTER_CUBIC)
        out = out.reshape(out.shape[:2] + image.shape[2:])
    else:
        from PIL import Image
        planes = image[:, :, None] if image.ndim == 2 else image
        out = np.stack([np.asarray(Image.fromarray(planes[:, :, c].astype(np.float32), "F")
                                   .resize((shape[1], shape[0]), Image.BICUBIC))
                        for c in range(planes.shape[2])], axis=2).reshape(
            tuple(shape) + image.shape[2:])
    return np.clip(out, 0, 1)


def blurred(images, kernel, noise, seed=0):
    """The stride-1 protocol: each image blurred in valid mode, Gaussian noise of sigma
    ``noise`` added (one generator seeded ``seed`` across the images), 8-bit rounding."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        clean = convolve(image, kernel, stride=1, activation="identity")
        out.append(quantize(clean + rng.normal(0, noise, clean.shape) if noise else clean))
    return out


def padded_filter(blurred_image, kernel, function):
    """``function`` on each channel of ``blurred_image`` padded symmetrically to the
    original size plus :data:`MARGIN`, cropped back to the original size, clipped."""
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2 + MARGIN, (kw - 1) // 2 + MARGIN
    bottom, right = kh - 1 - (kh - 1) // 2 + MARGIN, kw - 1 - (kw - 1) // 2 + MARGIN
    padded = np.pad(blurred_image, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
    out = np.stack([function(padded[:, :, c]) for c in range(padded.shape[2])], axis=2)
    return np.clip(out[MARGIN:out.shape[0] - MARGIN, MARGIN:out.shape[1] - MARGIN], 0, 1)


def wiener(blurred_image, kernel, balance):
    """scikit-image's Wiener filter, padded as :func:`padded_filter` says."""
    from skimage.restoration import wiener as skimage_wiener
    return padded_filter(blurred_image, kernel, lambda c: skimage_wiener(c, kernel, balance))


def richardson_lucy(blurred_image, kernel, num_iter):
    """scikit-image's Richardson-Lucy, padded as :func:`padded_filter` says."""
    from skimage.restoration import richardson_lucy as skimage_rl
    return padded_filter(blurred_image, kernel, lambda c: skimage_rl(c, kernel,
                                                                     num_iter=num_iter))


def _scores(originals, outputs, ssim):
    psnr = float(np.mean([metrics.psnr(o, r) for o, r in zip(originals, outputs)]))
    if ssim is None:
        return psnr, None
    return psnr, float(np.mean([ssim(o, r, channel_axis=-1, data_range=1.0)
                                for o, r in zip(originals, outputs)]))


def stride1_study(images, *, quick=False, n_threads=None):
    """The stride-1 study: for each blur of :data:`BLURS` and noise of :data:`NOISES`,
    the PSNR and SSIM (mean over the images) of the blurred input (padded, as is),
    the paper's reverse solve, ``restore`` at its defaults and, where scikit-image
    is installed, its tuned Wiener and Richardson-Lucy.

    Returns
    -------
    rows : list of dict
        ``blur``, ``noise``, ``method``, ``psnr``, ``ssim`` (None without
        scikit-image), ``setting`` (the tuned value or restore's iterations).
    examples : dict
        blur -> panels (original, blurred, Wiener or None, restore) of the first
        image at noise 0.01.
    """
    skimage_metrics = optional("skimage.metrics")
    ssim = None if skimage_metrics is None else skimage_metrics.structural_similarity
    have_skimage = optional("skimage.restoration") is not None
    balances = WIENER_BALANCES[::3] if quick else WIENER_BALANCES
    iterations = RL_ITERATIONS[::3] if quick else RL_ITERATIONS
    rows, examples = [], {}
    for name, kernel in BLURS.items():
        for noise in NOISES:
            data = blurred(images, kernel, noise)
            restored, info = restore(data, kernel, stride=1, return_info=True,
                                     n_threads=n_threads)
            results = {
                "blurred input": ([padded_filter(b, kernel, lambda c: c) for b in data], ""),
                "paper's reverse solve": (deconvolve(data, kernel, stride=1,
                                                     n_threads=n_threads), ""),
                "restore": (restored, f"{info.iterations} it."),
            }
            if have_skimage:
                for label, run, values, unit in [
                        ("Wiener (tuned)", wiener, balances, "balance {:g}"),
                        ("Richardson-Lucy (tuned)", richardson_lucy, iterations, "{} it.")]:
                    value = max(values, key=lambda v: _scores(
                        images, [run(b, kernel, v) for b in data], None)[0])
                    results[label] = ([run(b, kernel, value) for b in data],
                                      unit.format(value))
            for method, (outputs, setting) in results.items():
                psnr, score = _scores(images, outputs, ssim)
                rows.append(dict(blur=name, noise=noise, method=method, psnr=psnr,
                                 ssim=score, setting=setting))
            if noise:
                examples[name] = (images[0], results["blurred input"][0][0],
                                  results["Wiener (tuned)"][0][0] if have_skimage else None,
                                  restored[0])
    return rows, examples
