# Type stubs for the compiled module built from src_c/_png_filter.pyx (private).
import numpy as np
import numpy.typing as npt

def paeth_rows(
    raw: npt.NDArray[np.uint8],
    start: int,
    stop: int,
    step: int,
    out: npt.NDArray[np.uint8],
) -> None: ...

def unfilter_rows(
    data: npt.NDArray[np.uint8],
    step: int,
    out: npt.NDArray[np.uint8],
) -> int: ...
