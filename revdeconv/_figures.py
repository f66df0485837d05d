"""Drawing the experiment's figures: labelled image strips (Pillow) and the
loss-ratio plot (matplotlib, optional). :mod:`revdeconv.report` says what goes
in them; this module only draws."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Strip panels narrower than this are enlarged (nearest neighbour, by a whole
#: factor) so that their labels fit.
MIN_PANEL_WIDTH = 160
#: White pixels between two panels.
GAP = 4


def _font():
    try:
        return ImageFont.load_default(size=12)
    except TypeError:               # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text_band(texts, widths, font):
    """A white band with ``texts[i]`` written in the column ``widths[i]`` wide (each
    clipped to its column), columns ``GAP`` apart, as an ``(h, W, 3)`` float array."""
    height = font.getbbox("Ag")[3] + 6
    band = Image.new("L", (sum(widths) + GAP * (len(widths) - 1), height), 255)
    left = 0
    for text, width in zip(texts, widths):
        cell = Image.new("L", (width, height), 255)
        ImageDraw.Draw(cell).text((3, 3), text, fill=0, font=font)
        band.paste(cell, (left, 0))
        left += width + GAP
    grey = np.asarray(band, dtype=np.float64) / 255
    return np.repeat(grey[:, :, None], 3, axis=2)


def _rgb(panel):
    """A panel as 3 channels in [0, 1] for display: grey repeated, extra channels left out."""
    panel = np.clip(panel, 0, 1)
    if panel.ndim == 2:
        panel = panel[:, :, None]
    return np.repeat(panel[:, :, :1], 3, axis=2) if panel.shape[2] < 3 else panel[:, :, :3]


def labelled_strip(panels, title, labels):
    """Panels of one height side by side, ``GAP`` white pixels apart, under a band
    with ``title`` across the strip and ``labels[i]`` over panel ``i``; panels
    narrower than ``MIN_PANEL_WIDTH`` are enlarged by a whole factor first (and
    the title says so). Returns an ``(H, W, 3)`` float array in ``[0, 1]``."""
    panels = [_rgb(p) for p in panels]
    scale = -(-MIN_PANEL_WIDTH // panels[0].shape[1])
    panels = [np.repeat(np.repeat(p, scale, axis=0), scale, axis=1) for p in panels]
    if scale > 1:
        title += f", shown x{scale}"
    font = _font()
    widths = [p.shape[1] for p in panels]
    rows = [_text_band([title], [sum(widths) + GAP * (len(panels) - 1)], font),
            _text_band(labels, widths, font)]
    gap = np.ones((panels[0].shape[0], GAP, 3))
    body = [part for panel in panels for part in (panel, gap)][:-1]
    return np.concatenate(rows + [np.concatenate(body, axis=1)], axis=0)


def plot_series(panels, path, *, xlabel, ylabel):
    """One log-log plot per ``(title, ours, theirs)`` of ``panels`` (each a list of
    ``(x, y)``; ``theirs`` may be empty), side by side, written to ``path`` as PNG.
    Returns False (and writes nothing) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, ours, theirs) in zip(axes[0], panels):
        ax.plot([x for x, _ in ours], [y for _, y in ours], "o-", label="ours")
        if theirs:
            ax.plot([x for x, _ in theirs], [y for _, y in theirs], "s--",
                    label="author (paper's images)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
