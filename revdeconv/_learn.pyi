# Type stubs for the compiled module built from src_c/_learn.pyx (private).
import numpy as np
import numpy.typing as npt

def sgd(
    originals: npt.NDArray[np.floating],
    orig_geom: npt.NDArray[np.intp],
    targets: npt.NDArray[np.floating],
    target_geom: npt.NDArray[np.intp],
    params: npt.NDArray[np.floating],
    sq_err: npt.NDArray[np.float64],
    order: npt.NDArray[np.intp],
    taps: npt.NDArray[np.intp],
    stride_h: int,
    stride_w: int,
    lr: float,
    epochs: int,
    learn_bias: bool,
    activation: int,
    n_threads: int,
) -> None: ...
def sgd_each(
    originals: npt.NDArray[np.floating],
    orig_geom: npt.NDArray[np.intp],
    targets: npt.NDArray[np.floating],
    target_geom: npt.NDArray[np.intp],
    params: npt.NDArray[np.floating],
    sq_err: npt.NDArray[np.float64],
    order: npt.NDArray[np.intp],
    order_start: npt.NDArray[np.intp],
    taps: npt.NDArray[np.intp],
    stride_h: int,
    stride_w: int,
    lr: float,
    epochs: int,
    learn_bias: bool,
    activation: int,
    n_threads: int,
) -> None: ...
def normal_equations(
    originals: npt.NDArray[np.floating],
    orig_geom: npt.NDArray[np.intp],
    targets: npt.NDArray[np.floating],
    target_geom: npt.NDArray[np.intp],
    acc: npt.NDArray[np.float64],
    rows: npt.NDArray[np.float64],
    n_channels: int,
    kh: int,
    kw: int,
    stride_h: int,
    stride_w: int,
    with_bias: bool,
    activation: int,
    n_threads: int,
) -> None: ...

DESIGN_ROWS: int
DESIGN_LANES: int
