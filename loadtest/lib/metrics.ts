// In-memory k6-like metrics: Counter, Rate, Trend (all samples kept, sorted on demand) and a
// registry keyed by metric name. Aggregations follow k6: a Trend's p(N) interpolates linearly
// between the closest ranks, med is p(50); a Counter's rate is per second of the run.

export type MetricType = 'counter' | 'rate' | 'trend';

export class Counter {
  readonly type = 'counter' as const;
  count = 0;
  add(n = 1): void {
    this.count += n;
  }
  get samples(): number {
    return this.count;
  }
}

export class Rate {
  readonly type = 'rate' as const;
  trues = 0;
  total = 0;
  add(value: boolean): void {
    this.total += 1;
    if (value) this.trues += 1;
  }
  /** Fraction of true samples, NaN without samples. */
  get rate(): number {
    return this.total === 0 ? Number.NaN : this.trues / this.total;
  }
  get samples(): number {
    return this.total;
  }
}

export class Trend {
  readonly type = 'trend' as const;
  private values: number[] = [];
  private sorted = true;
  private sum = 0;

  add(value: number): void {
    if (this.values.length > 0 && value < this.values[this.values.length - 1]!) this.sorted = false;
    this.values.push(value);
    this.sum += value;
  }
  get samples(): number {
    return this.values.length;
  }
  private ordered(): number[] {
    if (!this.sorted) {
      this.values.sort((a, b) => a - b);
      this.sorted = true;
    }
    return this.values;
  }
  /** Percentile (0-100) as k6 computes it; NaN without samples. */
  percentile(p: number): number {
    const v = this.ordered();
    if (v.length === 0) return Number.NaN;
    const rank = (Math.min(Math.max(p, 0), 100) / 100) * (v.length - 1);
    const lo = v[Math.floor(rank)]!;
    const hi = v[Math.ceil(rank)]!;
    return lo + (hi - lo) * (rank - Math.floor(rank));
  }
  get avg(): number {
    return this.values.length === 0 ? Number.NaN : this.sum / this.values.length;
  }
  get min(): number {
    return this.values.length === 0 ? Number.NaN : this.ordered()[0]!;
  }
  get max(): number {
    const v = this.ordered();
    return v.length === 0 ? Number.NaN : v[v.length - 1]!;
  }
  get med(): number {
    return this.percentile(50);
  }
}

export type Metric = Counter | Rate | Trend;

/** Named metrics of one scenario run; get-or-create by type, like k6 custom metrics. */
export class MetricRegistry {
  private readonly metrics = new Map<string, Metric>();
  /** Wall time of the run, used for Counter rates (per second). */
  durationMs = 0;

  counter(name: string): Counter {
    return this.getOrCreate(name, 'counter', () => new Counter());
  }
  rate(name: string): Rate {
    return this.getOrCreate(name, 'rate', () => new Rate());
  }
  trend(name: string): Trend {
    return this.getOrCreate(name, 'trend', () => new Trend());
  }
  get(name: string): Metric | undefined {
    return this.metrics.get(name);
  }
  names(): string[] {
    return [...this.metrics.keys()];
  }

  private getOrCreate<M extends Metric>(name: string, type: MetricType, make: () => M): M {
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`metric ${name} is a ${existing.type}, not a ${type}`);
      return existing as M;
    }
    const created = make();
    this.metrics.set(name, created);
    return created;
  }
}
