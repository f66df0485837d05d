# Type stubs for the compiled module built from src_c/_levels.pyx (private).
import numpy as np
import numpy.typing as npt

def stored_levels(
    values: npt.NDArray[np.floating],
    out: npt.NDArray[np.uint8] | npt.NDArray[np.uint16],
    top: float,
) -> bool: ...
