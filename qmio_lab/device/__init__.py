"""The simulated QMIO QPU: chip layout, calibrations with drift, noise, Target and backend."""
from qmio_lab.device.calibration import Calibration, CouplerCalibration, QubitCalibration
from qmio_lab.device.device import QmioDevice
from qmio_lab.device.schedule import CalibrationSchedule
from qmio_lab.device.simulator import QmioSimulator
from qmio_lab.device.topology import Topology

__all__ = [
    "Calibration", "CalibrationSchedule", "CouplerCalibration", "QmioDevice", "QmioSimulator",
    "QubitCalibration", "Topology",
]
