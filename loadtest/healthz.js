// healthz: the ceiling under k6. VUS VUs send one fixed request as fast as
// they can for DURATION_SECONDS: by default `GET /healthz` (no Redis, no
// auth: what hyper and our accept loop cost), or, with TARGET_URL, METHOD
// and BODY, the hold request against `examples/ceiling.rs` (hyper plus one
// EVALSHA). loadtest/run.sh runs it with the VUS of the scenario it is the
// ceiling of. With RATE set, requests start at that steady rate instead,
// by at most VUS VUs (an open model, as in hold.js, with its warm-up left
// out): the latency floor that the steady-rate step of a scenario is
// compared with.
//
//   BASE_URL=http://127.0.0.1:8080 k6 run loadtest/healthz.js

import http from 'k6/http';

import {
  BASE_URL,
  P95_MS,
  P99_MS,
  REQUEST_TIMEOUT,
  assertLoopback,
  env,
  envInt,
  headers,
  loadScenario,
  phase,
} from './lib/common.js';
import { TREND_STATS, endpointStats, endpointThresholds, report } from './lib/summary.js';

const VUS = envInt('VUS', 64, 1, 1000);
const DURATION_SECONDS = envInt('DURATION_SECONDS', 20, 1, 600);
const TARGET_URL = env('TARGET_URL', `${BASE_URL}/healthz`);
const METHOD = env('METHOD', 'GET');
const BODY = env('BODY', '');
const NAME = env('NAME', 'healthz');
const RATE = envInt('RATE', 0, 0, 100000);
assertLoopback(TARGET_URL);

export const options = {
  scenarios: {
    bare: loadScenario({ vus: VUS, seconds: DURATION_SECONDS, rate: RATE }),
  },
  thresholds: {
    ...endpointThresholds([NAME], P95_MS, P99_MS),
    http_req_failed: ['rate<0.01'],
  },
  summaryTrendStats: TREND_STATS,
};

/** The request's parameters, by the `name` tag of its phase. */
const params = Object.fromEntries(
  [NAME, `${NAME}_warmup`].map((name) => [
    name,
    {
      // A hold-shaped request carries a user key and a queue token too.
      headers: BODY ? headers({ key: 'trk_1_ceiling', token: '1.ceilingceilingceiling' }) : {},
      tags: { name },
      timeout: REQUEST_TIMEOUT,
    },
  ]),
);

export default function () {
  http.request(METHOD, TARGET_URL, BODY || null, params[phase(NAME, RATE)]);
}

export function handleSummary(data) {
  const rows = [endpointStats(data, NAME, DURATION_SECONDS)];
  return report(data, NAME, rows, { target: `${METHOD} ${TARGET_URL}`, vus: VUS, rate: RATE });
}
