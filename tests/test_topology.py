from collections import Counter

from qmio_lab.device import QmioDevice, Topology
from qmio_lab.device.topology import ROW_SIZES


def test_rows_and_size():
    topo = Topology()
    assert ROW_SIZES == (5, 3, 5, 3, 6, 4, 6)
    assert topo.num_qubits == 32
    assert [len(r) for r in topo.rows] == list(ROW_SIZES)
    # positions: one row per y value with the declared number of qubits
    per_row = Counter(y for _, y in topo.positions.values())
    assert [per_row[float(i)] for i in range(len(ROW_SIZES))] == list(ROW_SIZES)


def test_couplers_join_adjacent_rows_once_with_one_direction(device: QmioDevice):
    topo = device.topology
    row_of = {q: i for i, row in enumerate(topo.rows) for q in row}
    pairs = set(topo.edges)
    for a, b in pairs:
        assert abs(row_of[a] - row_of[b]) == 1, (a, b)
        assert (b, a) not in pairs, f"coupler {a}-{b} has both directions"
    # nearest neighbours: no coupler spans more than a qubit spacing horizontally
    for a, b in pairs:
        assert abs(topo.positions[a][0] - topo.positions[b][0]) < 1.5


def test_coupling_map_connected_and_directed(device: QmioDevice):
    cmap = device.coupling_map
    assert device.num_qubits == 32
    assert cmap.size() == 32
    assert cmap.is_connected()
    assert set(cmap.get_edges()) == set(device.topology.edges)
    assert all(0 < len(device.topology.neighbours(q)) <= 4 for q in range(32))
    assert set(device.positions) == set(range(32))
