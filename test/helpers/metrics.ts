// Reading a daemon's /metrics: each sample by its name and labels, whatever order the labels print in.
export type Samples = Map<string, number>;

const sampleKey = (name: string, labels: Record<string, string>): string =>
  `${name}{${Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, value]) => `${label}=${JSON.stringify(value)}`)
    .join(',')}}`;

/** Every sample of the Prometheus text exposition at `url`/metrics. */
export async function scrapeMetrics(url: string): Promise<Samples> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, label, value]) => [label!, value!]));
    samples.set(sampleKey(match[1]!, labels), Number(match[3]));
  }
  return samples;
}

/** A sample's value, or undefined for a series not exported. */
export function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.get(sampleKey(name, labels));
}
