# Type stubs for the compiled module built from src_c/_reverse.pyx (private).
import numpy as np
import numpy.typing as npt

def deconvolve(
    src: list[npt.NDArray[np.floating]],
    src_geom: npt.NDArray[np.intp],
    kernel: npt.NDArray[np.floating],
    dst: list[npt.NDArray[np.floating]],
    dst_geom: npt.NDArray[np.intp],
    scratch: npt.NDArray[np.floating],
    tiled_for: npt.NDArray[np.intp],
    chunk: int,
    n_channels: int,
    stride_h: int,
    stride_w: int,
    eps: float,
    activation: int,
    n_threads: int,
) -> None: ...
