import { ChipMetric, IChip, IQubitFigures } from './types';
import { formatPercent } from './format';

const SVG_NS = 'http://www.w3.org/2000/svg';

export const METRICS: { key: ChipMetric; label: string; higherIsBetter: boolean }[] = [
  { key: 't1', label: 'T1 (µs)', higherIsBetter: true },
  { key: 't2', label: 'T2 echo (µs)', higherIsBetter: true },
  { key: 'readout_error', label: 'Readout error', higherIsBetter: false },
  { key: 'sx_error', label: 'SX error', higherIsBetter: false }
];

/** Times come in seconds (the calibration's unit) and are shown in µs; errors as percentages. */
export function formatMetric(metric: ChipMetric, value: number): string {
  return metric === 't1' || metric === 't2' ? formatMicroseconds(value) : formatPercent(value);
}

export function formatMicroseconds(seconds: number): string {
  return `${(seconds * 1e6).toFixed(1)} µs`;
}

/** Hue from red (worst) to green (best) of the chip's own range. */
function colourOf(value: number, lo: number, hi: number, higherIsBetter: boolean): string {
  let t = hi > lo ? (value - lo) / (hi - lo) : 1;
  if (!higherIsBetter) {
    t = 1 - t;
  }
  return `hsl(${Math.round(t * 120)}, 70%, 45%)`;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

/**
 * Draw the chip: qubits at their positions, couplers as lines, each qubit coloured by `metric`
 * (hover for its figures). `scale` is pixels per layout unit.
 */
export function renderChip(chip: IChip, metric: ChipMetric, scale = 34): SVGSVGElement {
  const info = METRICS.find(m => m.key === metric) ?? METRICS[0];
  const values = chip.qubits.map(q => q[metric]);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const xs = chip.qubits.map(q => q.x);
  const ys = chip.qubits.map(q => q.y);
  const pad = 0.6;
  const width = (Math.max(...xs) + pad * 2) * scale;
  const height = (Math.max(...ys) + pad * 2) * scale;
  const root = svg('svg', {
    class: 'jp-qmio-chip',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `QMIO chip coloured by ${info.label}`
  });
  const at = (q: IQubitFigures): [number, number] => [
    (q.x + pad) * scale,
    (q.y + pad) * scale
  ];
  const byId = new Map(chip.qubits.map(q => [q.id, q]));
  for (const c of chip.couplers) {
    const a = byId.get(c.control);
    const b = byId.get(c.target);
    if (!a || !b) {
      continue;
    }
    const [x1, y1] = at(a);
    const [x2, y2] = at(b);
    const line = svg('line', { x1, y1, x2, y2, class: 'jp-qmio-coupler' });
    const title = svg('title', {});
    title.textContent = `ECR ${c.control}→${c.target}: error ${formatPercent(c.ecr_error)}`;
    line.appendChild(title);
    root.appendChild(line);
  }
  for (const q of chip.qubits) {
    const [cx, cy] = at(q);
    const group = svg('g', { class: 'jp-qmio-qubit', 'data-qubit': q.id });
    group.appendChild(
      svg('circle', { cx, cy, r: scale * 0.36, fill: colourOf(q[metric], lo, hi, info.higherIsBetter) })
    );
    const label = svg('text', { x: cx, y: cy + scale * 0.12, 'text-anchor': 'middle' });
    label.textContent = String(q.id);
    group.appendChild(label);
    const title = svg('title', {});
    title.textContent =
      `Q${q.id}: T1 ${formatMicroseconds(q.t1)}, T2 ${formatMicroseconds(q.t2)}, ` +
      `readout ${formatPercent(q.readout_error)}, SX ${formatPercent(q.sx_error)}, ` +
      `${(q.frequency / 1e9).toFixed(3)} GHz`;
    group.appendChild(title);
    root.appendChild(group);
  }
  return root;
}

/** "T1 (µs): 21.3 … 88.0" under the map. */
export function legendText(chip: IChip, metric: ChipMetric): string {
  const info = METRICS.find(m => m.key === metric) ?? METRICS[0];
  const values = chip.qubits.map(q => q[metric]);
  const lo = formatMetric(metric, Math.min(...values));
  const hi = formatMetric(metric, Math.max(...values));
  return `${info.label}: ${info.higherIsBetter ? `red ${lo} … green ${hi}` : `green ${lo} … red ${hi}`}`;
}
