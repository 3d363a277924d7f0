// The end-of-run report of every scenario: a table on stdout and, when
// SUMMARY_JSON names a file, the same figures as JSON for loadtest/run.sh.

import { env } from './common.js';

/** Trend statistics every scenario asks k6 for. */
export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

/**
 * Thresholds for a list of endpoint names (the `name` tag): p95/p99 bounds
 * on their latency, and a no-op bound on their count so that k6 keeps the
 * per-endpoint request counts for the report.
 */
export function endpointThresholds(names, p95, p99) {
  const t = {};
  for (const n of names) {
    t[`http_req_duration{name:${n}}`] = [`p(95)<${p95}`, `p(99)<${p99}`];
    t[`http_reqs{name:${n}}`] = ['count>=0'];
    t[`http_req_failed{name:${n}}`] = ['rate>=0'];
  }
  return t;
}

const round = (x, d = 1) => (x === undefined || x === null ? null : Math.round(x * 10 ** d) / 10 ** d);

/** Figures of one endpoint: requests, rate over `seconds`, latency (ms). */
export function endpointStats(data, name, seconds) {
  return stats(data, name, `{name:${name}}`, seconds);
}

/** Figures of every request of the run together. */
export function totalStats(data, seconds) {
  return stats(data, 'all', '', seconds);
}

function stats(data, name, selector, seconds) {
  const m = data.metrics;
  const dur = m[`http_req_duration${selector}`];
  const reqs = m[`http_reqs${selector}`];
  const failed = m[`http_req_failed${selector}`];
  const count = reqs ? reqs.values.count : 0;
  const v = dur ? dur.values : {};
  return {
    name,
    requests: count,
    seconds: round(seconds, 2),
    rps: seconds > 0 ? round(count / seconds, 0) : null,
    p50_ms: round(v.med, 2),
    p95_ms: round(v['p(95)'], 2),
    p99_ms: round(v['p(99)'], 2),
    max_ms: round(v.max, 2),
    failed: failed ? Math.round(failed.values.rate * count) : 0,
  };
}

/** Value of a counter (0 when it never got a sample). */
export function count(data, metric) {
  const m = data.metrics[metric];
  return m ? m.values.count : 0;
}

/** Every threshold that failed, as "metric: expression". */
export function failedThresholds(data) {
  const out = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expr, r] of Object.entries(m.thresholds || {})) {
      if (!r.ok) out.push(`${metric}: ${expr}`);
    }
  }
  return out;
}

function pad(s, n, right) {
  const str = s === null || s === undefined ? '-' : String(s);
  return right ? str.padStart(n) : str.padEnd(n);
}

/** The endpoint table as text. */
export function table(rows) {
  const head = `${pad('endpoint', 16)}${pad('requests', 10, true)}${pad('req/s', 9, true)}${pad('p50 ms', 9, true)}${pad('p95 ms', 9, true)}${pad('p99 ms', 9, true)}${pad('max ms', 9, true)}${pad('failed', 8, true)}`;
  const lines = rows.map(
    (r) =>
      `${pad(r.name, 16)}${pad(r.requests, 10, true)}${pad(r.rps, 9, true)}${pad(r.p50_ms, 9, true)}${pad(r.p95_ms, 9, true)}${pad(r.p99_ms, 9, true)}${pad(r.max_ms, 9, true)}${pad(r.failed, 8, true)}`,
  );
  return [head, ...lines].join('\n');
}

/**
 * The handleSummary result: text on stdout, JSON in SUMMARY_JSON (if set),
 * extra files (fixtures for wrk) as given.
 */
export function report(data, scenario, rows, facts, files = {}) {
  const failed = failedThresholds(data);
  const summary = {
    scenario,
    generator: 'k6',
    finished_at: new Date().toISOString(),
    run_seconds: round(data.state.testRunDurationMs / 1000, 2),
    endpoints: rows,
    facts,
    thresholds_failed: failed,
    ok: failed.length === 0,
  };
  const factLines = Object.entries(facts).map(([k, v]) => `  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  const text = [
    '',
    `== k6 ${scenario}: ${summary.run_seconds} s`,
    table(rows),
    ...(factLines.length ? ['', ...factLines] : []),
    '',
    failed.length ? `THRESHOLDS FAILED (${failed.length}):\n  ${failed.join('\n  ')}` : 'all thresholds passed',
    '',
  ].join('\n');
  const out = { stdout: text, ...files };
  const path = env('SUMMARY_JSON', '');
  if (path) out[path] = JSON.stringify(summary, null, 2);
  return out;
}
