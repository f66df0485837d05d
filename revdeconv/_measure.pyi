# Type stubs for the compiled module built from src_c/_measure.pyx (private).
import numpy as np
import numpy.typing as npt

def mean_abs_diff(
    a: list[npt.NDArray[np.floating]],
    b: list[npt.NDArray[np.floating]],
    geom: npt.NDArray[np.intp],
    out: npt.NDArray[np.float64],
    n_channels: int,
    n_threads: int,
) -> None: ...
