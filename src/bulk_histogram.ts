// Prometheus histograms for the values every decision records (stage durations, batch sizes, fill
// ratios, clearing prices; about sixteen per decision). prom-client's Histogram resolves the label
// set and the bucket's property key on every observation, about half a microsecond each; here a
// label set is a column of bucket counts incremented in place, and the registry reads it in
// prom-client's own histogram format.
import type { Metric, MetricValueWithName, Registry } from 'prom-client';

export interface BulkHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Upper bounds, increasing; +Inf is implied. */
  buckets: readonly number[];
  registers: readonly Registry[];
}

/** The observations of one label set. Owned by the JS thread. */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; the last entry counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly histogram: BulkHistogram<string>,
    private readonly bounds: Float64Array,
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** A value that is not finite is not counted: prom-client would throw, at a scrape or mid-decision. */
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const { bounds } = this;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.sum += value;
    if (this.count++ === 0) this.histogram.shown(this);
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

type Value = MetricValueWithName<string> & { sharedLabels: Readonly<Record<string, string>>; exemplar?: null };

/** A histogram's values as a prom-client Registry reads them. */
interface Exported<V> {
  name: string;
  help: string;
  type: 'histogram';
  values: V[];
  aggregator: 'sum';
}

export class BulkHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: Float64Array;
  private readonly series = new Map<string, HistogramSeries>();
  /** The series a scrape lists, in the order of their first observation (as prom-client lists them). */
  private listed: HistogramSeries[] = [];
  private readonly unlabelled: HistogramSeries | undefined;

  constructor(config: BulkHistogramConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = Float64Array.from(config.buckets);
    if (!config.labelNames?.length) {
      this.unlabelled = new HistogramSeries(this, this.bounds, {});
      // prom-client lists an unlabelled histogram from the start, zeros included.
      this.listed.push(this.unlabelled);
    }
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set, made on first use. */
  labels(labels: Readonly<Record<L, string>>): HistogramSeries {
    const key = JSON.stringify(labels);
    let series = this.series.get(key);
    if (!series) this.series.set(key, (series = new HistogramSeries(this, this.bounds, { ...labels })));
    return series;
  }

  /** For a histogram without labels. */
  observe(value: number): void {
    this.unlabelled!.observe(value);
  }

  /** Called by a series on its first observation since the last reset. */
  shown(series: HistogramSeries): void {
    if (!this.listed.includes(series)) this.listed.push(series);
  }

  reset(): void {
    for (const series of this.series.values()) series.reset();
    this.unlabelled?.reset();
    this.listed = [];
  }

  /** What the registry formats: per series its cumulative buckets, +Inf, sum and count. */
  getForPromString(): Promise<Exported<Value>> {
    const values: Value[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const series of this.listed) {
      const sharedLabels = series.labels;
      let cumulative = 0;
      for (let bucket = 0; bucket < this.bounds.length; bucket++) {
        cumulative += series.counts[bucket]!;
        values.push({ labels: { le: this.bounds[bucket]! }, sharedLabels, value: cumulative, metricName: bucketName, exemplar: null });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: series.count, metricName: bucketName, exemplar: null });
      values.push({ labels: {}, sharedLabels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels, value: series.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** The same values with each series' labels merged into its values' (prom-client's get()). */
  async get(): Promise<Exported<MetricValueWithName<string>>> {
    const metric = await this.getForPromString();
    const values = metric.values.map(({ sharedLabels, labels, ...value }) => ({ ...value, labels: { ...labels, ...sharedLabels } }));
    return { ...metric, values };
  }
}
