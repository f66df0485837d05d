# Type stubs for the compiled module built from src_c/_openmp_helpers.pyx (private).
OPENMP_ENABLED: bool

def max_threads() -> int: ...
