// k6 threshold expressions: parse ("p(95)<200", "rate<0.01", "count>0", "avg<=100"), check that
// the aggregation fits the metric type (as k6 does before a run), and evaluate against a metric.
// A metric without samples fails its thresholds: "no data" must never pass a CI gate.

import type { Metric, MetricRegistry, MetricType } from './metrics.js';

export type Aggregation = 'avg' | 'min' | 'max' | 'med' | 'p' | 'count' | 'rate';
export type Operator = '<' | '<=' | '>' | '>=' | '==' | '===' | '!=';

export interface Threshold {
  /** The expression as written, e.g. "p(95)<200". */
  source: string;
  aggregation: Aggregation;
  /** For aggregation "p": the percentile, e.g. 95 or 99.9. */
  percentile?: number;
  operator: Operator;
  value: number;
}

/** A threshold as k6 accepts it in options.thresholds[metric][i]. */
export type ThresholdSpec = string | { threshold: string; abortOnFail?: boolean; delayAbortEval?: string };

export interface ThresholdResult {
  metric: string;
  source: string;
  status: 'pass' | 'fail' | 'skip';
  /** The aggregated value compared, NaN when the metric has no samples. */
  actual: number;
  note?: string;
}

const EXPRESSION =
  /^\s*(avg|min|max|med|count|rate|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/;

/** Aggregations k6 allows on each metric type. */
const ALLOWED: Record<MetricType, readonly Aggregation[]> = {
  counter: ['count', 'rate'],
  rate: ['rate'],
  trend: ['avg', 'min', 'max', 'med', 'p'],
};

/** Parses one k6 threshold expression (or {threshold: "..."} object); throws if malformed. */
export function parseThreshold(spec: ThresholdSpec): Threshold {
  const source = typeof spec === 'string' ? spec : spec.threshold;
  const match = EXPRESSION.exec(source);
  if (!match) throw new Error(`invalid threshold expression "${source}"`);
  const [, agg, pct, operator, value] = match;
  const threshold: Threshold = {
    source: source.trim(),
    aggregation: (pct === undefined ? agg : 'p') as Aggregation,
    operator: operator as Operator,
    value: Number(value),
  };
  if (pct !== undefined) {
    threshold.percentile = Number(pct);
    if (threshold.percentile > 100) throw new Error(`percentile above 100 in "${source}"`);
  }
  return threshold;
}

/** Throws if the aggregation cannot apply to this metric type (e.g. p(95) on a Rate). */
export function assertApplicable(metricName: string, type: MetricType, threshold: Threshold): void {
  if (!ALLOWED[type].includes(threshold.aggregation)) {
    throw new Error(
      `threshold "${threshold.source}" on ${metricName}: ${threshold.aggregation} does not apply to a ${type} metric ` +
        `(allowed: ${ALLOWED[type].join(', ')})`,
    );
  }
}

/** The aggregated value a threshold compares; NaN without samples. */
export function aggregate(metric: Metric, threshold: Threshold, durationMs: number): number {
  if (metric.samples === 0) return Number.NaN;
  switch (metric.type) {
    case 'counter':
      return threshold.aggregation === 'rate' ? metric.count / Math.max(durationMs / 1000, 1e-9) : metric.count;
    case 'rate':
      return metric.rate;
    case 'trend':
      switch (threshold.aggregation) {
        case 'avg':
          return metric.avg;
        case 'min':
          return metric.min;
        case 'max':
          return metric.max;
        case 'med':
          return metric.med;
        case 'p':
          return metric.percentile(threshold.percentile ?? 50);
        default:
          return Number.NaN;
      }
  }
}

/** Applies a comparison operator. */
export function compare(actual: number, operator: Operator, expected: number): boolean {
  switch (operator) {
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '==':
    case '===':
      return actual === expected;
    case '!=':
      return actual !== expected;
  }
}

/** Evaluates one threshold against one metric. A count threshold on an empty counter sees 0. */
export function evaluateThreshold(
  metricName: string,
  metric: Metric,
  threshold: Threshold,
  durationMs = 0,
): ThresholdResult {
  assertApplicable(metricName, metric.type, threshold);
  const empty = metric.samples === 0;
  const actual = empty && threshold.aggregation === 'count' ? 0 : aggregate(metric, threshold, durationMs);
  if (Number.isNaN(actual)) {
    return { metric: metricName, source: threshold.source, status: 'fail', actual, note: 'no samples' };
  }
  const ok = compare(actual, threshold.operator, threshold.value);
  return { metric: metricName, source: threshold.source, status: ok ? 'pass' : 'fail', actual };
}

export interface EvaluateOptions {
  /** Evaluate only thresholds on Rate metrics (error rates); report the others as skipped. */
  onlyErrors?: boolean;
}

/** Evaluates a whole k6 thresholds object against a registry; unknown metrics fail. */
export function evaluateThresholds(
  thresholds: Record<string, ThresholdSpec[]>,
  registry: MetricRegistry,
  options: EvaluateOptions = {},
): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const [metricName, specs] of Object.entries(thresholds)) {
    const metric = registry.get(metricName);
    for (const spec of specs) {
      const threshold = parseThreshold(spec);
      if (!metric) {
        results.push({ metric: metricName, source: threshold.source, status: 'fail', actual: NaN, note: 'unknown metric' });
      } else if (options.onlyErrors && metric.type !== 'rate') {
        results.push({ metric: metricName, source: threshold.source, status: 'skip', actual: NaN, note: '--only-errors' });
      } else {
        results.push(evaluateThreshold(metricName, metric, threshold, registry.durationMs));
      }
    }
  }
  return results;
}

/** Validates thresholds before a run: every expression parses and fits its metric's type. */
export function validateThresholds(thresholds: Record<string, ThresholdSpec[]>, types: Record<string, MetricType>): void {
  for (const [metricName, specs] of Object.entries(thresholds)) {
    const type = types[metricName];
    if (!type) throw new Error(`threshold on unknown metric ${metricName} (known: ${Object.keys(types).join(', ')})`);
    for (const spec of specs) assertApplicable(metricName, type, parseThreshold(spec));
  }
}
