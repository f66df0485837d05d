# Type stubs for the compiled module built from src_c/_convolve.pyx (private).
import numpy as np
import numpy.typing as npt

#: The code the kernels take for each activation name (the C enum of src_c/_simd.h).
ACTIVATION_CODES: dict[str, int]

def convolve(
    src: list[npt.NDArray[np.floating]],
    src_geom: npt.NDArray[np.intp],
    kernel: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    dst: list[npt.NDArray[np.floating]],
    dst_geom: npt.NDArray[np.intp],
    tiled: npt.NDArray[np.floating],
    taps: npt.NDArray[np.intp],
    scratch: npt.NDArray[np.floating],
    nonfinite_rows: npt.NDArray[np.uint8],
    stride_h: int,
    stride_w: int,
    activation: int,
    n_threads: int,
) -> None: ...
def squared_error(
    src: list[npt.NDArray[np.floating]],
    src_geom: npt.NDArray[np.intp],
    kernel: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    targets: list[npt.NDArray[np.floating]],
    target_geom: npt.NDArray[np.intp],
    scratch: npt.NDArray[np.floating],
    row_sums: npt.NDArray[np.float64],
    stride_h: int,
    stride_w: int,
    activation: int,
    n_threads: int,
) -> None: ...
