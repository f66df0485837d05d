# Type stubs for the compiled module built from src_c/_restore.pyx (private).
import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.floating]
_I = npt.NDArray[np.intp]
_D = npt.NDArray[np.float64]

def cg_forward(
    p: _F, u: _F, xg: _I, t: _F, data: _F, yg: _I, ypitch: _I, kernel: _F, tiled: _F,
    taps: _I, stride_h: int, stride_w: int, start: bool, sums_y: _D, sums_x: _D,
    n_threads: int,
) -> None: ...
def cg_adjoint(
    t: _F, yg: _I, ypitch: _I, p: _F, u: _F, q: _F, xg: _I, kernel: _F, tiled: _F, taps: _I,
    stride_h: int, stride_w: int, weight: _F, order: int, start: bool, scratch: _F, sums: _D,
    n_threads: int,
) -> None: ...
def cg_start(
    p: _F, r: _F, q: _F, xg: _I, n_channels: int, sums: _D, n_threads: int,
) -> None: ...
def tv_dual(
    x: _F, xbar: _F, q0: _F, q1: _F, xg: _I, aold: _F, dual: _F, data: _F, yg: _I,
    ypitch: _I, kernel: _F, tiled: _F, taps: _I, stride_h: int, stride_w: int, sigma: _F,
    lam: _F, first: bool, update: bool, measure: bool, scratch: _F, sums_y: _D, sums_x: _D,
    n_threads: int,
) -> None: ...
def tv_primal(
    x: _F, xbar: _F, q0: _F, q1: _F, xg: _I, dual: _F, yg: _I, ypitch: _I, kernel: _F,
    tiled: _F, taps: _I, stride_h: int, stride_w: int, tau: _F, lo: float, hi: float,
    zeros: _F, measure: bool, scratch: _F, sums: _D, n_threads: int,
) -> None: ...
