"""Writing an experiment's results: CSV tables, a Markdown report, strips and plots.

The plots need matplotlib (``pip install "revdeconv[plot]"``); everything
else needs only NumPy and Pillow.
"""

import csv
import math
import os
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from .data import author_results
from .experiment import TABLE1_RATES
from .io import save_image

__all__ = ["write_all", "write_tables", "write_report", "write_strips", "write_plots"]

_CHANNELS = {1: ["grey"], 3: ["Red", "Green", "Blue"], 4: ["Red", "Green", "Blue", "Alpha"]}


def _channel_names(n):
    return _CHANNELS.get(n, [f"channel {c}" for c in range(n)])


def _author_lookup():
    return {(round(row["learning_rate"], 6), row["filter"]): row for row in author_results()}


def _author_row(authors, rate, name):
    return authors.get((round(rate, 6), name))


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
    """(label, rates) of the Table 2 averages: the paper's Table 1 rates, and all rates."""
    paper = [r for r in result.rates if any(math.isclose(r, t) for t in TABLE1_RATES)]
    sets = []
    if paper:
        sets.append(("1.0-0.1", paper))
    if not paper or len(paper) != len(result.rates):
        sets.append(("all", list(result.rates)))
    return sets


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
        writer.writerow(["learning_rate", "filter", "MAE", "MAE0", "loss_ratio", "gain", "PSNR",
                         "filter_error", "diverged", "author_MAE", "author_MAE0",
                         "author_loss_ratio"] + kernel_columns)
        for row in result.rows:
            author = _author_row(authors, row.rate, row.filter) or {}
            writer.writerow([f"{row.rate:g}", row.filter, _fmt(row.mae), _fmt(row.mae0),
                             _fmt(row.loss_ratio), _fmt(row.gain), _fmt(row.psnr),
                             _fmt(row.filter_error), int(row.diverged),
                             _fmt(author.get("MAE")), _fmt(author.get("MAE0")),
                             _fmt(author.get("loss_ratio"))]
                            + [_fmt(float(v)) for v in row.kernel.ravel()])
    path2 = os.path.join(out, "table2.csv")
    with open(path2, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rates", "n_rates", "filter", "MAE", "MAE0", "loss_ratio", "gain",
                         "PSNR", "author_MAE", "author_MAE0", "author_loss_ratio"])
        for label, rates in _table2_rate_sets(result):
            theirs = _author_table2(authors, result, rates)
            for ours in result.table2(rates):
                author = theirs.get(ours["filter"], {})
                writer.writerow([label, ours["rates"], ours["filter"], _fmt(ours["MAE"]),
                                 _fmt(ours["MAE0"]), _fmt(ours["loss_ratio"]),
                                 _fmt(ours["gain"]), _fmt(ours["PSNR"]),
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


def write_report(result, out, figures=()):
    """Write ``report.md``: Tables 1 and 2 in the paper's layout beside the author's
    numbers, and the learned filters of each filter's best rate."""
    authors = _author_lookup()
    lines = [
        "# revdeconv: the paper's experiment",
        "",
        f"{result.n_images} images, filters {', '.join(result.filters)}, "
        f"{len(result.rates)} learning rates, method `{result.method}`, "
        f"author quirks {'on' if result.author_quirks else 'off'}. "
        "Ours are on this package's images; the author's (from `author_results.tsv`) are on the "
        "paper's ten images, which are not public: compare the shape, not the digits.",
        "",
    ]
    for label, rates in _table2_rate_sets(result):
        theirs = _author_table2(authors, result, rates)
        title = ("Table 2: average over the learning rates 1.0 ... 0.1 (the paper's Table 2)"
                 if label == "1.0-0.1" else f"Table 2: average over all {len(rates)} rates")
        lines += [f"## {title}", "",
                  "| filter | MAE | MAE0 | Loss | author MAE | author MAE0 | author Loss |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for ours in result.table2(rates):
            author = theirs.get(ours["filter"], {})
            lines.append(f"| {ours['filter']} | {_num(ours['MAE'])} | {_num(ours['MAE0'])} | "
                         f"{_pct(ours['loss_ratio'])} | {_num(author.get('MAE'))} | "
                         f"{_num(author.get('MAE0'))} | {_pct(author.get('loss_ratio'))} |")
        lines.append("")
    lines += ["## Table 1: every learning rate", "",
              "| γ | filter | MAE | MAE0 | Loss | gain | author MAE | author MAE0 | author Loss |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result.rows:
        author = _author_row(authors, row.rate, row.filter) or {}
        lines.append(f"| {row.rate:g} | {row.filter} | {_num(row.mae)} | {_num(row.mae0)} | "
                     f"{_pct(row.loss_ratio)} | {_num(row.gain)} | {_num(author.get('MAE'))} | "
                     f"{_num(author.get('MAE0'))} | {_pct(author.get('loss_ratio'))} |")
    lines += ["", "## Learned filters at each filter's best rate (smallest loss ratio)", ""]
    for name in result.filters:
        best = result.best(name)
        lines += [f"### {name}: γ = {best.rate:g}, loss {_pct(best.loss_ratio)}, "
                  f"relative filter error {_num(best.filter_error)}", "",
                  "| channel | learned filter (rows) |", "| --- | --- |"]
        for channel, kernel in zip(_channel_names(best.kernel.shape[0]), best.kernel):
            rows = "<br>".join("  ".join(f"{v:9.4f}" for v in r) for r in kernel)
            lines.append(f"| {channel} | <code>{rows}</code> |")
        true_rows = "<br>".join("  ".join(f"{v:9.4f}" for v in r) for r in result.filters[name])
        lines += [f"| true filter | <code>{true_rows}</code> |", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})"
                                       for p in figures] + [""]
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return [path]


def write_strips(result, out):
    """For each filter, ``strip_<filter>.png``: original | filtered, zoomed | deconvolved
    (first image, best rate), side by side with a 4-pixel white gap."""
    paths = []
    for name, panels in result.examples.items():
        height = panels[0].shape[0]
        gap = np.ones((height, 4) + panels[0].shape[2:])
        strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
        path = os.path.join(out, f"strip_{name}.png")
        save_image(path, strip)
        paths.append(path)
    return paths


def write_plots(result, out):
    """``loss_ratio.png``: loss ratio against learning rate per filter, ours and the
    author's. Returns [] when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    authors = _author_lookup()
    names = list(result.filters)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = [r for r in result.rows if r.filter == name]
        ax.plot([r.rate for r in rows], [100 * r.loss_ratio for r in rows], "o-", label="ours")
        theirs = [(r.rate, _author_row(authors, r.rate, name)) for r in rows]
        theirs = [(rate, a["loss_ratio"]) for rate, a in theirs if a]
        if theirs:
            ax.plot([t[0] for t in theirs], [100 * t[1] for t in theirs], "s--",
                    label="author (paper's images)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("learning rate γ")
        ax.set_ylabel("loss ratio |MAE - MAE0| / MAE0 (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "loss_ratio.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def write_all(result, out):
    """Every output file; returns (paths written, whether the plots were made)."""
    os.makedirs(out, exist_ok=True)
    plots = write_plots(result, out)
    strips = write_strips(result, out)
    paths = write_tables(result, out) + plots + strips
    paths += write_report(result, out, figures=plots + strips)
    return paths, bool(plots)
