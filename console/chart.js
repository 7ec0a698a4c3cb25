// Plain SVG charts for the console: a line chart (the pacing curve against spend) and a bar chart
// (delivery by hour). Each chart is an image to assistive technology, named by its title and a
// one-line summary; the numbers behind it are in a table next to it.
const svgNs = 'http://www.w3.org/2000/svg';
// Drawing units of the viewBox; the SVG scales to its container's width.
const width = 400;
const height = 220;
const margin = { top: 12, right: 14, bottom: 30, left: 64 };
const plotWidth = width - margin.left - margin.right;
const plotHeight = height - margin.top - margin.bottom;

function element(name, attributes = {}, text) {
  const node = document.createElementNS(svgNs, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A round step for about `count` ticks up to `max`: 1, 2 or 5 times a power of ten. */
function niceStep(max, count) {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

/** The SVG frame: role img, named by the title and the summary, with both axes drawn. */
function frame({ title, summary, xMax, yMax, xTicks, formatX, formatY }) {
  const svg = element('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart', 'aria-label': `${title}. ${summary}` });
  svg.append(element('title', {}, `${title}. ${summary}`));
  const x = (value) => margin.left + (value / xMax) * plotWidth;
  const step = niceStep(yMax > 0 ? yMax : 1, 4);
  // The axis ends on the first tick at or above the largest value, so every value sits under a grid line.
  const top = Math.max(1, Math.ceil(yMax / step)) * step;
  const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
  const axes = element('g', { class: 'axes', 'aria-hidden': 'true' });
  for (let value = 0; value <= top + step / 2; value += step) {
    axes.append(element('line', { x1: margin.left, x2: width - margin.right, y1: y(value), y2: y(value), class: 'grid' }));
    axes.append(element('text', { x: margin.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, formatY(value)));
  }
  for (const value of xTicks) axes.append(element('text', { x: x(value), y: height - margin.bottom + 16, 'text-anchor': 'middle' }, formatX(value)));
  axes.append(element('line', { x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0), class: 'axis' }));
  svg.append(axes);
  return { svg, x, y };
}

/**
 * Lines over the hours of a day. `lines`: [{ className, points: [[hour, value], ...] }];
 * `marker`: an optional [hour, value] drawn as a dot (where spend stands now).
 */
export function lineChart({ title, summary, lines, marker, formatY }) {
  const values = lines.flatMap((line) => line.points.map(([, value]) => value)).concat(marker ? [marker[1]] : []);
  const { svg, x, y } = frame({ title, summary, xMax: 24, yMax: Math.max(0, ...values), xTicks: [0, 6, 12, 18, 24], formatX: (h) => `${h}h`, formatY });
  for (const line of lines) {
    if (line.points.length === 0) continue;
    const d = line.points.map(([hour, value], i) => `${i === 0 ? 'M' : 'L'}${x(hour).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
    svg.append(element('path', { d, class: line.className, fill: 'none', 'aria-hidden': 'true' }));
  }
  if (marker) svg.append(element('circle', { cx: x(marker[0]), cy: y(marker[1]), r: 4, class: 'marker', 'aria-hidden': 'true' }));
  return svg;
}

/** One bar per hour 0..23 of `values`. */
export function barChart({ title, summary, values, formatY }) {
  const { svg, x, y } = frame({ title, summary, xMax: 24, yMax: Math.max(0, ...values), xTicks: [0, 6, 12, 18, 24], formatX: (h) => `${h}h`, formatY });
  const bars = element('g', { class: 'bars', 'aria-hidden': 'true' });
  values.forEach((value, hour) => {
    if (value > 0) bars.append(element('rect', { x: x(hour) + 1, y: y(value), width: Math.max(1, x(1) - x(0) - 2), height: y(0) - y(value) }));
  });
  svg.append(bars);
  return svg;
}
