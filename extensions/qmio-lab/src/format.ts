/** Small text helpers shared by the panel, the status bar and the dashboard. */

/** "40 s", "12 min", "2 h", "3 d" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, seconds);
  if (s < 60) {
    return `${Math.round(s)} s`;
  }
  if (s < 3600) {
    return `${Math.round(s / 60)} min`;
  }
  if (s < 86400 * 2) {
    return `${Math.round(s / 3600)} h`;
  }
  return `${Math.round(s / 86400)} d`;
}

/** A job's QPU time: as held once it has ended ("1.05 s"), else as expected ("~1.05 s"). */
export function formatQPUSeconds(
  held: number | null | undefined,
  expected: number | null | undefined
): string {
  if (held !== null && held !== undefined) {
    return `${held.toFixed(2)} s`;
  }
  if (expected !== null && expected !== undefined) {
    return `~${expected.toFixed(2)} s`;
  }
  return '—';
}

export function formatWhen(iso: string | null | undefined): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  return date.toLocaleString(undefined, {
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    timeZone: 'UTC',
    timeZoneName: 'short'
  });
}

export function formatPercent(p: number): string {
  return `${(p * 100).toFixed(p < 0.01 ? 2 : 1)} %`;
}

/** Create an element with a class and optional text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
