"""Writing an experiment's results: CSV tables, a Markdown report, strips and plots.

The plots need matplotlib (``pip install "revdeconv[plot]"``); everything
else needs only NumPy and Pillow. ``revdeconv._report_text`` writes the report's
prose, ``revdeconv._figures`` draws.
"""

import csv
import math
import os
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from ._figures import labelled_strip, plot_series
from ._report_text import (definitions, how_rows_are_averaged, protocol, provenance,
                           restoration)
from .data import author_results
from .experiment import TABLE1_RATES
from .io import save_image

__all__ = ["write_all", "write_tables", "write_report", "write_strips", "write_plots",
           "write_stride1", "table2_summary"]

_CHANNELS = {1: ["grey"], 3: ["Red", "Green", "Blue"], 4: ["Red", "Green", "Blue", "Alpha"]}
#: The CSV columns of ``restore=True`` (table2.csv: the gains only).
RESTORE_COLUMNS = ("restore_gain", "restore_PSNR", "bicubic_gain")


def _restored(result):
    """Whether the run restored (``run_experiment(restore=True)``)."""
    return result.bicubic is not None


def _gain_cells(result, values):
    """`` | zoom | bicubic | restore`` gain cells after the paper's gain, when restored."""
    if not _restored(result):
        return ""
    zoom, bicubic, ours = values
    return f" {_num(zoom)} | {_num(bicubic)} | {_num(ours)} |"


def _gain_heads(result):
    """The header and rule cells of :func:`_gain_cells`."""
    return ((" zoom gain | bicubic gain | restore gain |", " --- | --- | --- |")
            if _restored(result) else ("", ""))


def _channel_names(n):
    return _CHANNELS.get(n, [f"channel {c}" for c in range(n)])


def _author_lookup():
    return {(round(row["learning_rate"], 6), row["filter"]): row for row in author_results()}


def _author_row(authors, rate, name):
    return None if rate is None else authors.get((round(rate, 6), name))


def _author_table2(authors, result, rates):
    """The author's averages over ``rates``, for the filters the author ran.

    Averaged in decimal: the file's numbers are decimals, and the paper rounds
    their means half up (109.83715% is printed 109.8372%); binary floats would
    land just below the half.
    """
    table = {}
    for name in result.filters:
        rows = [_author_row(authors, rate, name) for rate in rates]
        if rows and all(rows):
            table[name] = {key: sum(Decimal(repr(r[key])) for r in rows) / len(rows)
                           for key in ("MAE", "MAE0", "loss_ratio")}
    return table


def _table2_rate_sets(result):
    """(label, rates) of the Table 2 averages: the paper's Table 1 rates among those
    run (labelled "1.0-0.1" only when all ten were run, else by the rates), and all
    rates when others were run too; ("lstsq", None) for a least-squares run."""
    if result.method == "lstsq":
        return [("lstsq", None)]
    paper = [r for r in result.rates if any(math.isclose(r, t) for t in TABLE1_RATES)]
    sets = []
    if paper:
        whole = len({round(r, 6) for r in paper}) == len(TABLE1_RATES)
        label = "1.0-0.1" if whole else " ".join(f"{r:g}" for r in paper)
        sets.append((label, paper))
    if not paper or len(paper) != len(result.rates):
        sets.append(("all", list(result.rates)))
    return sets


def _rate(value):
    """A learning rate as a heading prints it: 1.0, 0.5, 0.05."""
    text = f"{value:g}"
    return text if any(c in text for c in ".en") else text + ".0"


def _rate_list(rates):
    """"0.5, 0.3, 0.1", or "1.0 ... 0.1" for more than four."""
    if len(rates) > 4:
        return f"{_rate(rates[0])} ... {_rate(rates[-1])}"
    return ", ".join(_rate(r) for r in rates)


def _table2_title(label, rates):
    """What a Table 2 block is a mean over, said plainly."""
    if label == "1.0-0.1":
        return (f"Table 2: mean over the 10 learning rates {_rate_list(rates)} "
                "(the paper's Table 2)")
    if len(rates) == 1:
        title = f"Table 2: the one learning rate {_rate(rates[0])} (nothing averaged"
    elif label == "all":
        return f"Table 2: mean over all {len(rates)} learning rates run ({_rate_list(rates)})"
    else:
        title = (f"Table 2: mean over the {len(rates)} learning rates {_rate_list(rates)} "
                 f"(a {len(rates)}-rate mean")
    return title + ", not the paper's Table 2, which averages the ten rates 1.0 ... 0.1)"


def table2_summary(result):
    """One line per filter for the command's standard output: the Table 2 means
    (or, for least squares, each filter's one row), saying what they are over.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv.experiment import run_experiment
    >>> images = [np.random.default_rng(0).random((30, 45, 3))]
    >>> line = table2_summary(run_experiment(images, rates=[0.5, 0.3, 0.1]))[0]
    >>> line.split("(")[1]
    'mean over the 3 rates 0.5, 0.3, 0.1)'
    """
    label, rates = _table2_rate_sets(result)[0]
    if label == "lstsq":
        what = "least squares: one fit, no learning rate"
    elif len(rates) == 1:
        what = f"the one rate {_rate(rates[0])}"
    else:
        what = (f"mean over the {len(rates)} rates {_rate_list(rates)}"
                + (", the paper's Table 2" if label == "1.0-0.1" else ""))
    return [f"{row['filter']:<16} MAE {row['MAE']:.4f}  MAE0 {row['MAE0']:.4f}  "
            f"loss {100 * row['loss_ratio']:.4f}%  ({what})" for row in result.table2(rates)]


def _fmt(value, digits=10):
    return "" if value is None else f"{float(value):.{digits}g}"


def write_tables(result, out):
    """Write ``table1.csv`` (one row per rate and filter) and ``table2.csv`` (averages)."""
    authors = _author_lookup()
    n_channels, kh, kw = result.rows[0].kernel.shape
    kernel_columns = [f"k{c}_{i}_{j}" for c in range(n_channels) for i in range(kh)
                      for j in range(kw)]
    path1 = os.path.join(out, "table1.csv")
    with open(path1, "w", newline="") as f:
        writer = csv.writer(f)
        restored = _restored(result)
        writer.writerow(["learning_rate", "filter", "MAE", "MAE0", "loss_ratio", "gain", "PSNR",
                         *(RESTORE_COLUMNS if restored else ()),
                         "filter_error", "diverged", "author_MAE", "author_MAE0",
                         "author_loss_ratio"] + kernel_columns)
        for row in result.rows:
            author = _author_row(authors, row.rate, row.filter) or {}
            writer.writerow(["" if row.rate is None else f"{row.rate:g}", row.filter,
                             _fmt(row.mae), _fmt(row.mae0),
                             _fmt(row.loss_ratio), _fmt(row.gain), _fmt(row.psnr),
                             *([_fmt(row.restore_gain), _fmt(row.restore_psnr),
                                _fmt(row.bicubic_gain)] if restored else []),
                             _fmt(row.filter_error), int(row.diverged),
                             _fmt(author.get("MAE")), _fmt(author.get("MAE0")),
                             _fmt(author.get("loss_ratio"))]
                            + [_fmt(float(v)) for v in row.kernel.ravel()])
    path2 = os.path.join(out, "table2.csv")
    with open(path2, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rates", "n_rates", "filter", "MAE", "MAE0", "loss_ratio", "gain",
                         "PSNR", *(RESTORE_COLUMNS[::2] if restored else ()),
                         "author_MAE", "author_MAE0", "author_loss_ratio"])
        for label, rates in _table2_rate_sets(result):
            theirs = {} if rates is None else _author_table2(authors, result, rates)
            for ours in result.table2(rates):
                author = theirs.get(ours["filter"], {})
                writer.writerow([label, ours["rates"], ours["filter"], _fmt(ours["MAE"]),
                                 _fmt(ours["MAE0"]), _fmt(ours["loss_ratio"]),
                                 _fmt(ours["gain"]), _fmt(ours["PSNR"]),
                                 *([_fmt(ours["restore_gain"]), _fmt(ours["bicubic_gain"])]
                                   if restored else []),
                                 _fmt(author.get("MAE")), _fmt(author.get("MAE0")),
                                 _fmt(author.get("loss_ratio"))])
    return [path1, path2]


def _pct(value):
    text = "n/a" if value is None else _num(100 * value)
    return text if text == "n/a" else text + "%"


def _num(value):
    """Four decimals; a Decimal is rounded half up, as the paper prints."""
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _author_cells(author):
    """The author's MAE, MAE0 and Loss as the last cells of a table row."""
    return (f"{_num(author.get('MAE'))} | {_num(author.get('MAE0'))} | "
            f"{_pct(author.get('loss_ratio'))} |")


def _filter_lines(result, name):
    try:
        best = result.best(name)
    except KeyError:
        return [f"### {name}: every learning rate diverged", ""]
    where = "least squares" if best.rate is None else f"γ = {best.rate:g}"
    lines = [f"### {name}: {where}, loss {_pct(best.loss_ratio)}, "
             f"filter error {_num(best.filter_error)}", "",
             "| channel | learned filter (rows) |", "| --- | --- |"]
    for channel, kernel in zip(_channel_names(best.kernel.shape[0]), best.kernel):
        rows = "<br>".join("  ".join(f"{v:9.4f}" for v in r) for r in kernel)
        lines.append(f"| {channel} | <code>{rows}</code> |")
    true_rows = "<br>".join("  ".join(f"{v:9.4f}" for v in r) for r in result.filters[name])
    return lines + [f"| true filter | <code>{true_rows}</code> |", ""]


def _figure_caption(result, path):
    base = os.path.basename(path)
    if base.startswith("stride1_"):
        return ("*Stride 1, noise 0.01, the first image: original | blurred | Wiener (tuned) "
                "| `restore` (defaults).*")
    name = base[len("strip_"):-len(".png")] if base.startswith("strip_") else None
    if name not in result.examples:
        return ("*The loss ratio against the learning rate, ours and the author's "
                "(log scales).*" if base == "loss_ratio.png" else "")
    best = result.best(name)
    rate = ("least squares" if best.rate is None else
            f"learning rate {best.rate:g} (its best: the smallest loss)")
    image = result.image_names[0] if result.image_names else "the first image"
    return (f"*{name}, {rate}, image `{image}`: original | filtered, zoomed back | restored "
            "with the learned filter.*")


def write_report(result, out, figures=(), *, command=None, images_dir=None, left_out=(),
                 stride1=None):
    """Write ``report.md``: where the numbers come from, what each measure is,
    Tables 1 and 2 in the paper's layout beside the author's numbers, the learned
    filters of each filter's best rate, and the figures.

    Parameters
    ----------
    result : ExperimentResult
    out : str or os.PathLike
        The folder to write to.
    figures : sequence of str, optional
        Figure files (in ``out``) to show, with a caption each.
    command : str or sequence of str, optional
        The command line that ran the experiment (a list is the arguments after
        ``revdeconv``); default: said to be run from Python.
    images_dir : str, optional
        The folder the images were read from (``--images``).
    left_out : sequence of (str, str), optional
        ``(path, reason)`` of the files of ``images_dir`` that could not be used.
    stride1 : list of dict, optional
        The rows of :func:`revdeconv.experiment.run_stride1_study`.

    Returns
    -------
    list of str
        The path written.
    """
    authors = _author_lookup()
    lstsq = result.method == "lstsq"
    lines = ["# revdeconv: the paper's experiment", ""]
    lines += provenance(result, command, images_dir, left_out) + [""]
    lines += [protocol(result), "",
              "These are not the paper's ten photographs, which are not public; the author's "
              "numbers beside ours (`author_results.tsv`) are on those: compare the shape of "
              "the results (which filters and rates do well or badly), not the digits.", ""]
    lines += ["## What the numbers are", ""] + definitions(result) + [""]
    lines += [how_rows_are_averaged(result), ""]
    if lstsq:
        paper = _author_table2(authors, result, list(TABLE1_RATES))
        head, rule = _gain_heads(result)
        lines += ["## Table 1 (least squares): one fit per filter, no learning rate", "",
                  f"| filter | MAE | MAE0 | Loss | gain |{head} filter error | paper (SGD) MAE | "
                  "paper MAE0 | paper Loss |",
                  f"| --- | --- | --- | --- | --- |{rule} --- | --- | --- | --- |"]
        for row in result.rows:
            author = paper.get(row.filter, {})
            lines.append(f"| {row.filter} | {_num(row.mae)} | {_num(row.mae0)} | "
                         f"{_pct(row.loss_ratio)} | {_num(row.gain)} |"
                         f"{_gain_cells(result, (1.0, row.bicubic_gain, row.restore_gain))} "
                         f"{_num(row.filter_error)} | {_author_cells(author)}")
        lines += ["", "## Learned filters (least squares)", ""]
    else:
        for label, rates in _table2_rate_sets(result):
            theirs = _author_table2(authors, result, rates)
            head, rule = ((" gain |" + _gain_heads(result)[0], " --- |" + _gain_heads(result)[1])
                          if _restored(result) else ("", ""))
            lines += [f"## {_table2_title(label, rates)}", "",
                      f"| filter | MAE | MAE0 | Loss |{head} author MAE | author MAE0 | "
                      "author Loss |", f"| --- | --- | --- | --- |{rule} --- | --- | --- |"]
            for ours in result.table2(rates):
                author = theirs.get(ours["filter"], {})
                gains = (f" {_num(ours['gain'])} |" + _gain_cells(result, (
                    1.0, ours["bicubic_gain"], ours["restore_gain"]))) if _restored(result) else ""
                lines.append(f"| {ours['filter']} | {_num(ours['MAE'])} | {_num(ours['MAE0'])} | "
                             f"{_pct(ours['loss_ratio'])} |{gains} {_author_cells(author)}")
            lines.append("")
        lines += [f"## Table 1: every learning rate (each row a mean over the "
                  f"{result.n_images} images)", "",
                  f"| γ | filter | MAE | MAE0 | Loss | gain |{_gain_heads(result)[0]} author MAE "
                  "| author MAE0 | author Loss |",
                  f"| --- | --- | --- | --- | --- | --- |{_gain_heads(result)[1]} --- | --- | --- |"]
        for row in result.rows:
            author = _author_row(authors, row.rate, row.filter) or {}
            lines.append(f"| {row.rate:g} | {row.filter} | {_num(row.mae)} | {_num(row.mae0)} | "
                         f"{_pct(row.loss_ratio)} | {_num(row.gain)} |"
                         f"{_gain_cells(result, (1.0, row.bicubic_gain, row.restore_gain))} "
                         f"{_author_cells(author)}")
        lines += ["", "## Learned filters at each filter's best rate (smallest loss ratio)", ""]
    for name in result.filters:
        lines += _filter_lines(result, name)
    if _restored(result) or stride1:
        lines += restoration(result, stride1)
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            base = os.path.basename(path)
            lines += [f"![{base}]({base})", "", _figure_caption(result, path), ""]
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return [path]


def write_strips(result, out):
    """For each filter, ``strip_<filter>.png``: original | filtered, zoomed | restored
    (the first image, at the filter's best rate), side by side with a 4-pixel white
    gap, under a label band that names the filter, the rate, the image and each
    panel. Panels narrower than 160 pixels are enlarged by a whole factor
    (nearest neighbour) so that the labels fit."""
    paths = []
    for name, panels in result.examples.items():
        best = result.best(name)
        rate = ("least squares (no learning rate)" if best.rate is None
                else f"learning rate {best.rate:g} (best)")
        image = result.image_names[0] if result.image_names else "first image"
        strip = labelled_strip(panels, f"{name}, {rate}, image {image}",
                               ["original", "filtered, zoomed back", "restored"])
        path = os.path.join(out, f"strip_{name}.png")
        save_image(path, strip)
        paths.append(path)
    return paths


def write_plots(result, out):
    """``loss_ratio.png``: loss ratio against learning rate per filter, ours and the
    author's. Returns [] when matplotlib is not installed, and for a least-squares
    run (no learning rate)."""
    if result.method == "lstsq":
        return []
    authors = _author_lookup()
    panels = []
    for name in result.filters:
        rows = [r for r in result.rows if r.filter == name]
        theirs = [(r.rate, _author_row(authors, r.rate, name)) for r in rows]
        panels.append((name, [(r.rate, 100 * r.loss_ratio) for r in rows],
                       [(rate, 100 * a["loss_ratio"]) for rate, a in theirs if a]))
    path = os.path.join(out, "loss_ratio.png")
    if not plot_series(panels, path, xlabel="learning rate γ",
                       ylabel="loss ratio |MAE - MAE0| / MAE0 (%)"):
        return []
    return [path]


def write_stride1(study, out):
    """``stride1.csv`` (the study's rows) and, per blur, ``stride1_<blur>.png``: the first
    image at noise 0.01, original | blurred | Wiener | restore, each labelled with its
    PSNR. ``study`` is what :func:`revdeconv.experiment.run_stride1_study` returns."""
    rows, examples = study
    path = os.path.join(out, "stride1.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["blur", "noise", "method", "PSNR", "SSIM", "setting"])
        writer.writerows([r["blur"], f"{r['noise']:g}", r["method"], _fmt(r["psnr"]),
                          _fmt(r["ssim"]), r["setting"]] for r in rows)
    paths = [path]
    for blur, panels in examples.items():
        shown = [(label, p) for label, p in zip(
            ["original", "blurred (noise 0.01)", "Wiener (tuned)", "restore"], panels)
            if p is not None]
        strip = labelled_strip([_padded_to(p, panels[0].shape) for _, p in shown],
                               f"stride 1, {blur}, noise 0.01, first image",
                               [label if label == "original" else
                                f"{label} {_psnr(panels[0], p):.2f} dB" for label, p in shown])
        paths.append(os.path.join(out, f"stride1_{blur.replace(' ', '-')}.png"))
        save_image(paths[-1], strip)
    return paths


def _padded_to(panel, shape):
    """A valid-mode blurred panel centred on white to the original's size."""
    top, left = (shape[0] - panel.shape[0]) // 2, (shape[1] - panel.shape[1]) // 2
    canvas = np.ones(shape[:2] + panel.shape[2:])
    canvas[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
    return canvas


def _psnr(original, image):
    from .metrics import psnr
    if image.shape != original.shape:       # the blurred input: its valid region
        top, left = (original.shape[0] - image.shape[0]) // 2, \
            (original.shape[1] - image.shape[1]) // 2
        original = original[top:top + image.shape[0], left:left + image.shape[1]]
    return psnr(original, image)


def write_all(result, out, *, command=None, images_dir=None, left_out=(), stride1=None):
    """Every output file; returns (paths written, whether the plots were made).

    ``command``, ``images_dir`` and ``left_out`` go into the report's provenance
    (see :func:`write_report`); ``stride1``, what
    :func:`revdeconv.experiment.run_stride1_study` returns, adds its table and strips."""
    os.makedirs(out, exist_ok=True)
    plots = write_plots(result, out)
    strips = write_strips(result, out)
    extra = write_stride1(stride1, out) if stride1 is not None else []
    paths = write_tables(result, out) + plots + strips + extra
    paths += write_report(result, out, figures=plots + strips + extra[1:], command=command,
                          images_dir=images_dir, left_out=left_out,
                          stride1=None if stride1 is None else stride1[0])
    return paths, bool(plots)
