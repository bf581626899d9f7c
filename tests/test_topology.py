import math
from collections import Counter

from qmio_lab.device import QmioDevice, Topology

#: QMIO's 33 directed ECR pairs, as its published 2025 calibrations list them
QMIO_PAIRS = {(0, 1), (2, 1), (2, 3), (4, 3), (5, 4), (6, 3), (6, 12), (7, 0), (7, 9), (9, 10), (11, 10), (11, 12),
              (13, 21), (14, 11), (14, 18), (15, 8), (15, 16), (18, 17), (18, 19), (20, 19), (22, 21), (22, 31),
              (23, 20), (23, 30), (24, 17), (24, 27), (25, 16), (25, 26), (26, 27), (28, 27), (28, 29), (30, 29),
              (30, 31)}


def test_the_default_chip_is_qmios():
    topo = Topology()
    assert topo.num_qubits == 32
    assert set(topo.edges) == QMIO_PAIRS and len(topo.edges) == 33
    assert [len(r) for r in topo.rows] == [5, 3, 5, 3, 6, 4, 6]
    per_row = Counter(y for _, y in topo.positions.values())
    assert [per_row[float(i)] for i in range(7)] == [5, 3, 5, 3, 6, 4, 6]


def test_couplers_join_neighbours_in_one_direction(device: QmioDevice):
    topo = device.topology
    pairs = set(topo.edges)
    for a, b in pairs:
        assert (b, a) not in pairs, f"coupler {a}-{b} has both directions"
        # drawn next to each other: in a row, or diagonally between adjacent rows
        assert math.dist(topo.positions[a], topo.positions[b]) < 1.2, (a, b)


def test_coupling_map_connected_and_directed(device: QmioDevice):
    cmap = device.coupling_map
    assert device.num_qubits == 32
    assert cmap.size() == 32
    assert cmap.is_connected()
    assert set(cmap.get_edges()) == set(device.topology.edges)
    assert all(0 < len(device.topology.neighbours(q)) <= 3 for q in range(32))
    assert set(device.positions) == set(range(32))
    assert len(device.calibration.couplers) == 33


def test_a_chip_naming_qubits_it_lacks_is_refused():
    import pytest

    with pytest.raises(ValueError, match="outside 0..1"):
        Topology(couplers=[(0, 2)], qubit_positions=[(0, 0), (1, 0)])
