"""qmio_lab: a Jupyter-centric platform for the QMIO hybrid HPC + quantum computing centre."""
__version__ = "0.1.0"
