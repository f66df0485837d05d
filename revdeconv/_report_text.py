"""The prose of ``report.md``: where the numbers come from, how they were
computed, what each measure is and what each mean is over. (Tables and
figures are :mod:`revdeconv.report`'s.)"""

import datetime
import os
import shlex

from ._threads import openmp_enabled
from ._version import __version__


def provenance(result, command, images_dir, left_out):
    """The lines that say where the numbers come from."""
    backend = result.backend or "not recorded"
    if result.backend == "compiled":
        backend += " (built with OpenMP)" if openmp_enabled() else " (a serial build)"
    threads = ("threads not recorded" if result.n_threads is None else "1 thread"
               if result.n_threads == 1 else f"up to {result.n_threads} threads")
    if command is None:
        command = "run from Python (`revdeconv.experiment.run_experiment`)"
    else:
        if not isinstance(command, str):
            command = "revdeconv " + shlex.join(str(arg) for arg in command)
        command = f"`{command}`"
    names = ", ".join(result.image_names)
    n = result.n_images
    if result.bundled:
        images = ("the ten bundled sample images (`revdeconv.data.samples()`: 180x250 RGB "
                  "crops of public-domain and CC0 photographs, sources in "
                  f"`revdeconv/data/samples/SOURCES.md`), in this order: {names}")
    elif images_dir is not None:
        images = (f"the {n} image{'s' if n != 1 else ''} of the folder `{images_dir}` "
                  f"(`--images`), in natural name order: {names}; grey images were given "
                  "three equal channels and alpha channels were dropped")
    else:
        images = (f"{n} image{'s' if n != 1 else ''} given to `run_experiment`"
                  + (f" ({names})" if names else ""))
    lines = [
        f"- revdeconv {__version__}, backend {backend}, {threads}",
        f"- command: {command}",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- images: {images}",
    ]
    if left_out:
        lines.append(f"- left out: {len(left_out)} file{'s' if len(left_out) != 1 else ''} "
                     "that could not be used: "
                     + "; ".join(f"`{os.path.basename(path)}` ({reason})"
                                 for path, reason in left_out))
    return lines


def protocol(result):
    """How the numbers were computed, in words (no measure named yet)."""
    filters = ", ".join(f"{name} ({'x'.join(map(str, k.shape))})"
                        for name, k in result.filters.items())
    text = (f"Filters {filters}, each at a stride of its own size with the `clip` activation "
            "and no bias; every filtered image stored as 8 bits and read back. ")
    if result.method == "lstsq":
        text += ("Method `lstsq`: each filter is fitted once, in closed form (least squares "
                 "over the blocks of every image), so there is no learning rate: one fit per "
                 "filter, one row per filter; then every image is deconvolved with it. ")
    else:
        text += (f"Method `sgd`, {len(result.rates)} learning rate"
                 f"{'s' if len(result.rates) != 1 else ''} γ: for each, the kernel starts at "
                 "zero and is learned by one pass over the images in order (the kernel "
                 "carried over from one image to the next), then every image is deconvolved "
                 "with the final kernel. ")
    if result.author_quirks:
        text += ("Run with author quirks on: as the author's code, the learning loop skips "
                 "the last row and column of blocks, and the baseline is resized to the full "
                 "image.")
    else:
        text += "Run with author quirks off."
    return text


def definitions(result):
    """Each measure, defined before any table uses it."""
    if result.author_quirks:
        region = "the full image"
        zoomed = ("the filtered image resized back to the full image by the author's "
                  "nearest-neighbour replication (`floor(c * Wo / W)`, misaligned where the "
                  "size is not a multiple of the stride)")
    else:
        region = ("the region the deconvolved image covers (e.g. 180x249 of a 180x250 image "
                  "at stride 3)")
        zoomed = ("the filtered image zoomed back to that region by nearest neighbour (each "
                  "filtered pixel repeated over its block)")
    lines = [
        "- **MAE**: the mean absolute error of the deconvolved image against the original, "
        f"`mean |deconvolved - original|` over every pixel and channel of {region}, pixel "
        "values in [0, 1]; averaged over the images.",
        f"- **MAE0**: the same for the baseline, {zoomed}: `mean |zoomed - original|`, "
        "averaged over the images. It does not depend on the learned filter.",
        "- **Loss**, the paper's loss ratio: `|MAE - MAE0| / MAE0`, in percent (the paper "
        "calls smaller better). It is blind to the sign: a deconvolution further from the "
        "original than the zoom and one closer by as much have the same loss.",
        "- **gain**: `MAE0 / MAE`, above 1 when the deconvolution is closer to the original "
        "than the zoom is, below 1 when it is further.",
    ]
    if result.method != "lstsq":
        lines.append("- **γ**: the learning rate of the SGD update.")
    lines += [
        "- **filter error**: `‖K - U‖ / ‖U‖` (Frobenius), the distance of the learned filter "
        "`K` (every channel) from the true filter `U`, relative to `U`.",
        "- `table1.csv` also gives the PSNR in dB (`10 log10(1 / MSE)`, peak 1, averaged over "
        "the images) and the learned kernels' values.",
    ]
    return lines


def how_rows_are_averaged(result):
    if result.method == "lstsq":
        return (f"Each row is a mean over the {result.n_images} images. There is no Table 2: "
                "it averages over learning rates, and least squares has none. The author's "
                "columns are the paper's Table 2 (SGD, mean over the rates 1.0 ... 0.1), for "
                "scale.")
    return (f"Each row of Table 1 is one learning rate, a mean over the {result.n_images} "
            "images. Each row of a Table 2 is a mean of Table 1 rows over the learning rates "
            "its heading names: MAE, MAE0 and gain averaged, and Loss the mean of the rows' "
            "loss ratios (not the ratio of the mean errors). The author's columns are the "
            "author's means over the same rates (from `author_results.tsv`, rounded half up "
            "as the paper prints them).")


def _cell(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def restoration(result, stride1=None):
    """The lines of the restoration section: what the restore columns are, the
    leave-one-out table and, with ``stride1`` (the rows of
    :func:`revdeconv.experiment.run_stride1_study`), the stride-1 study."""
    lines = ["## Restoration: `revdeconv.restore` beside the paper's reverse solve", ""]
    if result.bicubic is not None:
        lines += [
            "The tables' **zoom gain** is 1 by definition (the zoom is MAE0's baseline); "
            f"**bicubic gain** is MAE0 / MAE of blind bicubic upsampling ({result.bicubic}) "
            "of the filtered image to the same region; **restore gain** is MAE0 / MAE of "
            "`revdeconv.restore` (its defaults: Tikhonov, second order, weight from the "
            "estimated noise) with the row's learned filter. The paper's reverse solve "
            "returns the zoom (gain 1) for blur and sharpening: it cannot undo the filter. "
            "Edge detection cannot be undone by anything: its kernel sums to zero, so every "
            "block-constant image gives the same filtered image.", ""]
    if result.leave_one_out:
        some = next(iter(result.leave_one_out.values()))
        lines += [f"### Leave-one-out: the filter learned by `lstsq` on {some['images'] - 1} "
                  "images, the remaining one restored", "",
                  "Each image in turn is held out; gains are mean MAE0 over mean MAE of the "
                  "held-out images, PSNR in dB (mean).", "",
                  "| filter | restore gain | restore PSNR | reverse solve gain | "
                  "bicubic gain |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {_cell(r['gain'])} | {_cell(r['PSNR'], 2)} | "
                  f"{_cell(r['reverse_gain'])} | {_cell(r['bicubic_gain'])} |"
                  for name, r in result.leave_one_out.items()] + [""]
    if stride1:
        methods = list(dict.fromkeys(row["method"] for row in stride1))
        cases = list(dict.fromkeys((row["blur"], row["noise"]) for row in stride1))
        ssim = any(row["ssim"] is not None for row in stride1)
        lines += ["### Stride 1 (valid mode): deblurring", "",
                  "Each image blurred (valid mode), Gaussian noise of the given sigma added "
                  "(seed 0), stored as 8 bits; PSNR in dB "
                  + ("/ SSIM (scikit-image) " if ssim else "(SSIM: scikit-image is not "
                     "installed) ") + "against the original, mean over the images. Wiener "
                  "and Richardson-Lucy (scikit-image"
                  + ("" if any("Wiener" in m for m in methods) else ", not installed: left out")
                  + ") on the blurred image padded symmetrically, their balance / iterations "
                  "tuned on these images (the best, with its value).", "",
                  "| blur | noise | " + " | ".join(methods) + " |",
                  "|" + " --- |" * (len(methods) + 2)]
        for blur, noise in cases:
            cells = {row["method"]: row for row in stride1
                     if row["blur"] == blur and row["noise"] == noise}
            lines.append(f"| {blur} | {noise:g} | " + " | ".join(
                f"{c['psnr']:.2f}" + (f" / {c['ssim']:.4f}" if c["ssim"] is not None else "")
                + (f" ({c['setting']})" if c["setting"] else "")
                for c in (cells[m] for m in methods)) + " |")
        lines.append("")
    return lines
