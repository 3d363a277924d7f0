//! Holds one queue event stream (`GET /v1/queue/tokens/{token}/events`) open
//! per token of a file against a running server, and measures what they cost
//! the server: its resident memory (`VmRSS`, `VmHWM` from `/proc/<pid>/status`)
//! before the streams open, once they are all open, during and at the end of
//! the hold, and after they close; its CPU in each phase; and the
//! `queue_event_streams` gauge of its `/metrics`.
//!
//! Each stream counts as open once its first `event: status` arrived. The
//! streams stay open for `STREAMS_SECONDS` (counted from the moment the last
//! one opened), reading and counting every event, then all close together.
//!
//!   BASE_URL=http://127.0.0.1:8080 TOKENS_FILE=tokens.txt SERVER_PID=1234 \
//!     cargo run --release --example sse_streams
//!
//! Settings (environment): `BASE_URL` (loopback only), `TOKENS_FILE` (one
//! token a line), `STREAMS_SECONDS` (30), `OPEN_CONCURRENCY` (streams being
//! opened at once, 200), `OPEN_TIMEOUT_SECONDS` (bound of the opening phase,
//! 120), `CLOSE_WAIT_SECONDS` (how long to wait for the server's gauge to
//! fall back after closing, 10), `SERVER_PID` and `REDIS_PID` (processes to
//! sample), `CLK_TCK` (100), `TARGET_RSS_MIB` (100, reported, never
//! failing), `SUMMARY_JSON` (a file for the figures, in the shape of the k6
//! scripts' summaries, for `loadtest/run.sh streams`).
//!
//! The run fails (exit 1) when a stream did not open, or ended before its
//! token became ACTIVE or EXPIRED.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// Most bytes of response headers read before giving up on a stream.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Read buffer of one stream; an event is about 250 bytes.
const READ_BYTES: usize = 1024;

/// Bound on connecting and receiving the first event, per stream.
const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(30);

struct Config {
    addr: SocketAddr,
    tokens: Vec<String>,
    hold: Duration,
    open_concurrency: usize,
    open_timeout: Duration,
    close_wait: Duration,
    server_pid: Option<u32>,
    redis_pid: Option<u32>,
    clk_tck: f64,
    target_rss_mib: f64,
    summary: Option<String>,
}

/// Counters shared by every stream.
#[derive(Default)]
struct Counters {
    /// `event: status` received, first events included.
    events: AtomicU64,
    /// `event: status` received during the hold (after every stream opened).
    hold_events: AtomicU64,
    /// Keep-alive comments received.
    keepalives: AtomicU64,
    /// Events whose status was WAITING with a position other than the last.
    position_changes: AtomicU64,
    /// Events of a WAITING token whose position did not change (only the
    /// estimated wait did).
    wait_only_changes: AtomicU64,
    /// Streams whose last event said ACTIVE / EXPIRED (the server ends those).
    ended_active: AtomicU64,
    ended_expired: AtomicU64,
    /// Streams that ended while their token was still WAITING, or broke.
    lost: AtomicU64,
}

/// How the opening of one stream went.
enum Opened {
    /// First event received after this long.
    Ok(Duration),
    Failed(String),
}

#[derive(Deserialize)]
struct View {
    status: String,
    #[serde(default)]
    position: i64,
    #[serde(default)]
    estimated_wait_seconds: i64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cfg = config()?;
    let n = cfg.tokens.len();
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let holding = CancellationToken::new();
    let started = Instant::now();
    println!(
        "sse_streams: {n} streams to {} (open {} at once), held {} s once all are open",
        cfg.addr,
        cfg.open_concurrency,
        cfg.hold.as_secs()
    );

    let before = Sample::take(&cfg).await;
    println!("before:   {}", before.line());

    // Opening: every stream is a task; at most `open_concurrency` of them
    // are between connecting and their first event at once.
    let permits = Arc::new(Semaphore::new(cfg.open_concurrency));
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for token in &cfg.tokens {
        let task = StreamTask {
            addr: cfg.addr,
            token: token.clone(),
            permits: Arc::clone(&permits),
            opened: opened_tx.clone(),
            counters: Arc::clone(&counters),
            stop: stop.clone(),
            holding: holding.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
    }
    drop(opened_tx);
    let open_started = Instant::now();
    let mut first_event_ms = Vec::with_capacity(n);
    let mut open_failures: std::collections::BTreeMap<String, u64> = Default::default();
    let open_deadline = tokio::time::sleep(cfg.open_timeout);
    tokio::pin!(open_deadline);
    let mut answered = 0;
    while answered < n {
        tokio::select! {
            got = opened_rx.recv() => match got {
                Some(Opened::Ok(d)) => first_event_ms.push(d.as_secs_f64() * 1000.0),
                Some(Opened::Failed(why)) => *open_failures.entry(why).or_default() += 1,
                None => break,
            },
            () = &mut open_deadline => break,
        }
        answered += 1;
    }
    let open_secs = open_started.elapsed().as_secs_f64();
    let opened = first_event_ms.len();
    let not_answered = n - answered;
    if not_answered > 0 {
        *open_failures.entry("open_timeout".to_owned()).or_default() += not_answered as u64;
    }
    let failed_open = n - opened;
    let all_open = Sample::take(&cfg).await;
    println!(
        "all open: {} ({opened} of {n} streams opened in {open_secs:.1} s, {failed_open} failed)",
        all_open.line()
    );

    // Holding: every stream keeps reading; the server is sampled each second.
    holding.cancel();
    let hold_started = Instant::now();
    let mut peak_rss_kb = all_open.rss_kb.unwrap_or(0);
    let mut rss_series = Vec::new();
    while hold_started.elapsed() < cfg.hold {
        let left = cfg.hold.saturating_sub(hold_started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if let Some(status) = cfg.server_pid.and_then(proc_status) {
            peak_rss_kb = peak_rss_kb.max(status.rss_kb);
            rss_series.push(status.rss_kb);
        }
    }
    let hold_secs = hold_started.elapsed().as_secs_f64();
    let held = Sample::take(&cfg).await;
    println!("held:     {} (after {hold_secs:.1} s)", held.line());

    // Closing: every socket is dropped; the server notices and lets go.
    stop.cancel();
    let close_started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            // Still opening (bounded by its own timeout): no need to wait.
            task.abort();
        }
    }
    let mut after = Sample::take(&cfg).await;
    while after.gauge.is_some_and(|g| g > 0.0) && close_started.elapsed() < cfg.close_wait {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = Sample::take(&cfg).await;
    }
    // A moment more, for whatever the server frees after the gauge falls.
    tokio::time::sleep(Duration::from_secs(1)).await;
    after = Sample::take(&cfg).await;
    let close_secs = close_started.elapsed().as_secs_f64();
    println!("closed:   {} ({close_secs:.1} s after closing)", after.line());

    let c = &counters;
    let lost = c.lost.load(Ordering::Relaxed);
    let hold_events = c.hold_events.load(Ordering::Relaxed);
    first_event_ms.sort_by(f64::total_cmp);
    let mut failed = Vec::new();
    if failed_open > 0 {
        failed.push(format!("streams_opened: {opened} of {n} ({open_failures:?})"));
    }
    if lost > 0 {
        failed.push(format!("streams_lost: {lost} ended while WAITING or broke"));
    }
    let clk = cfg.clk_tck;
    let cpu = |a: &Sample, b: &Sample, secs: f64, pick: fn(&Sample) -> Option<u64>| -> Value {
        match (pick(a), pick(b)) {
            (Some(x), Some(y)) if secs > 0.0 => json!(round((y - x) as f64 / clk / secs * 100.0, 0)),
            _ => Value::Null,
        }
    };
    let mib = |kb: Option<u64>| kb.map(|k| round(k as f64 / 1024.0, 1));
    let per_stream_kib = match (before.rss_kb, all_open.rss_kb) {
        (Some(b), Some(a)) if opened > 0 => Some(round((a as f64 - b as f64) / opened as f64, 2)),
        _ => None,
    };
    let worst_kb = [
        before.hwm_kb,
        all_open.hwm_kb,
        held.hwm_kb,
        after.hwm_kb,
        Some(peak_rss_kb),
    ]
    .into_iter()
    .flatten()
    .max();
    let target_met = worst_kb.map(|k| (k as f64 / 1024.0) < cfg.target_rss_mib);
    let facts = json!({
        "base_url": format!("http://{}", cfg.addr),
        "streams": n,
        "opened": opened,
        "failed_open": failed_open,
        "open_failures": open_failures,
        "open_concurrency": cfg.open_concurrency,
        "open_seconds": round(open_secs, 2),
        "hold_seconds": round(hold_secs, 2),
        "close_seconds": round(close_secs, 2),
        "events": c.events.load(Ordering::Relaxed),
        "hold_events": hold_events,
        "position_changes": c.position_changes.load(Ordering::Relaxed),
        "wait_only_changes": c.wait_only_changes.load(Ordering::Relaxed),
        "keepalives": c.keepalives.load(Ordering::Relaxed),
        "ended_active": c.ended_active.load(Ordering::Relaxed),
        "ended_expired": c.ended_expired.load(Ordering::Relaxed),
        "lost": lost,
        "rss_mib": {
            "before": mib(before.rss_kb),
            "all_open": mib(all_open.rss_kb),
            "hold_peak": mib(Some(peak_rss_kb)),
            "hold_end": mib(held.rss_kb),
            "after_close": mib(after.rss_kb),
        },
        "hwm_mib": {
            "before": mib(before.hwm_kb),
            "all_open": mib(all_open.hwm_kb),
            "hold_end": mib(held.hwm_kb),
            "after_close": mib(after.hwm_kb),
        },
        "rss_hold_series_kib": rss_series,
        "rss_per_stream_kib": per_stream_kib,
        "threads": { "before": before.threads, "all_open": all_open.threads },
        "gauge_queue_event_streams": {
            "before": before.gauge,
            "all_open": all_open.gauge,
            "hold_end": held.gauge,
            "after_close": after.gauge,
        },
        "cpu_server_percent": {
            "open": cpu(&before, &all_open, open_secs, |s| s.server_ticks),
            "hold": cpu(&all_open, &held, hold_secs, |s| s.server_ticks),
            "close": cpu(&held, &after, close_secs, |s| s.server_ticks),
        },
        "cpu_redis_percent": {
            "open": cpu(&before, &all_open, open_secs, |s| s.redis_ticks),
            "hold": cpu(&all_open, &held, hold_secs, |s| s.redis_ticks),
        },
        "client_hwm_mib": mib(proc_status(std::process::id()).map(|s| s.hwm_kb)),
        "target_rss_mib": cfg.target_rss_mib,
        "target_met": target_met,
    });
    let rows = json!([
        {
            "name": "open_stream",
            "requests": n,
            "seconds": round(open_secs, 2),
            "rps": if open_secs > 0.0 { json!((opened as f64 / open_secs).round() as u64) } else { Value::Null },
            "p50_ms": percentile(&first_event_ms, 0.50),
            "p95_ms": percentile(&first_event_ms, 0.95),
            "p99_ms": percentile(&first_event_ms, 0.99),
            "max_ms": first_event_ms.last().map(|v| round(*v, 2)),
            "failed": failed_open,
        },
        {
            "name": "hold_events",
            "requests": hold_events,
            "seconds": round(hold_secs, 2),
            "rps": if hold_secs > 0.0 { json!((hold_events as f64 / hold_secs).round() as u64) } else { Value::Null },
            "p50_ms": null, "p95_ms": null, "p99_ms": null, "max_ms": null,
            "failed": lost,
        },
    ]);
    let summary = json!({
        "scenario": "streams",
        "generator": "sse_streams",
        "finished_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "run_seconds": round(started.elapsed().as_secs_f64(), 2),
        "endpoints": rows,
        "facts": facts,
        "thresholds_failed": failed,
        "ok": failed.is_empty(),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    match &cfg.summary {
        Some(path) => std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {path}"))?,
        None => println!("{text}"),
    }
    println!(
        "time to first event p50 {} ms, p99 {} ms; {} events ({hold_events} during the hold), {} ended ACTIVE, {} EXPIRED, {lost} lost",
        ms(percentile(&first_event_ms, 0.50)),
        ms(percentile(&first_event_ms, 0.99)),
        c.events.load(Ordering::Relaxed),
        c.ended_active.load(Ordering::Relaxed),
        c.ended_expired.load(Ordering::Relaxed),
    );
    if failed.is_empty() {
        Ok(())
    } else {
        for f in &failed {
            eprintln!("sse_streams: FAILED {f}");
        }
        std::process::exit(1)
    }
}

/// One stream, from connecting to closing.
struct StreamTask {
    addr: SocketAddr,
    token: String,
    permits: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<Opened>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    holding: CancellationToken,
}

impl StreamTask {
    async fn run(self) {
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return;
        };
        // Held from connecting to the first event, so that at most
        // `open_concurrency` streams are opening at once.
        let mut permit = Some(permit);
        let t0 = Instant::now();
        let opening = tokio::time::timeout(FIRST_EVENT_TIMEOUT, self.open());
        let (mut socket, mut body) = match opening.await {
            Ok(Ok(open)) => open,
            Ok(Err(e)) => return self.fail(&e.to_string()),
            Err(_) => return self.fail("first_event_timeout"),
        };
        let mut last: Option<View> = None;
        let mut buf = [0u8; READ_BYTES];
        loop {
            while let Some(event) = body.next_event() {
                if let Some(view) = self.count(&event, last.as_ref()) {
                    if permit.take().is_some() {
                        let _ = self.opened.send(Opened::Ok(t0.elapsed()));
                    }
                    last = Some(view);
                }
            }
            if body.ended {
                break;
            }
            let read = if permit.is_some() {
                // Still waiting for the first event: bounded.
                let left = FIRST_EVENT_TIMEOUT.saturating_sub(t0.elapsed());
                match tokio::time::timeout(left, socket.read(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => return self.fail("first_event_timeout"),
                }
            } else {
                tokio::select! {
                    read = socket.read(&mut buf) => read,
                    () = self.stop.cancelled() => return,
                }
            };
            match read {
                Ok(0) | Err(_) => body.ended = true,
                Ok(k) => {
                    if let Err(e) = body.push(&buf[..k]) {
                        if permit.is_some() {
                            return self.fail(&e.to_string());
                        }
                        body.ended = true;
                    }
                }
            }
        }
        if permit.is_some() {
            return self.fail("ended_before_first_event");
        }
        // Ended by the server: the server ends a stream after ACTIVE or
        // EXPIRED; any other end is a lost stream.
        let c = &self.counters;
        match last.as_ref().map(|v| v.status.as_str()) {
            Some("ACTIVE") => c.ended_active.fetch_add(1, Ordering::Relaxed),
            Some("EXPIRED") => c.ended_expired.fetch_add(1, Ordering::Relaxed),
            _ => c.lost.fetch_add(1, Ordering::Relaxed),
        };
        drop(socket);
    }

    fn fail(&self, why: &str) {
        let _ = self.opened.send(Opened::Failed(why.to_owned()));
    }

    /// Connects, sends the request and reads up to the response's body.
    async fn open(&self) -> anyhow::Result<(TcpStream, Body)> {
        let mut socket = TcpStream::connect(self.addr).await.context("connect")?;
        socket.set_nodelay(true)?;
        let request = format!(
            "GET /v1/queue/tokens/{}/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.token, self.addr
        );
        socket.write_all(request.as_bytes()).await.context("write")?;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; READ_BYTES];
        let end = loop {
            let k = socket.read(&mut buf).await.context("read")?;
            if k == 0 {
                bail!("closed_before_headers");
            }
            head.extend_from_slice(&buf[..k]);
            if let Some(at) = find(&head, b"\r\n\r\n") {
                break at + 4;
            }
            if head.len() > MAX_HEAD_BYTES {
                bail!("headers_too_long");
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let status = text.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!("status_{status}");
        }
        if !text.contains("content-type: text/event-stream") {
            bail!("not_event_stream");
        }
        let chunked = text.contains("transfer-encoding: chunked");
        let mut body = Body::new(chunked);
        body.push(&head[end..])?;
        Ok((socket, body))
    }

    /// Counts one SSE event; the view it carried, if a status event.
    fn count(&self, event: &[u8], last: Option<&View>) -> Option<View> {
        let c = &self.counters;
        let text = std::str::from_utf8(event).ok()?;
        if text.starts_with(':') {
            c.keepalives.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut name = "";
        let mut data = "";
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim();
            } else if let Some(v) = line.strip_prefix("data:") {
                data = v.trim();
            }
        }
        if name != "status" {
            return None;
        }
        let view: View = serde_json::from_str(data).ok()?;
        c.events.fetch_add(1, Ordering::Relaxed);
        if self.holding.is_cancelled() {
            c.hold_events.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(prev) = last.filter(|p| p.status == "WAITING" && view.status == "WAITING") {
            if view.position != prev.position {
                c.position_changes.fetch_add(1, Ordering::Relaxed);
            } else if view.estimated_wait_seconds != prev.estimated_wait_seconds {
                c.wait_only_changes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(view)
    }
}

/// The response body of one stream: chunked transfer decoding (when used),
/// then SSE events split on blank lines.
struct Body {
    chunked: bool,
    /// Raw bytes not yet decoded (chunked only).
    raw: Vec<u8>,
    /// Bytes left in the current chunk, its closing CRLF included.
    chunk_left: usize,
    /// Decoded bytes not yet split into events.
    text: Vec<u8>,
    ended: bool,
}

impl Body {
    fn new(chunked: bool) -> Self {
        Self {
            chunked,
            raw: Vec::new(),
            chunk_left: 0,
            text: Vec::new(),
            ended: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        if !self.chunked {
            self.text.extend_from_slice(bytes);
            return Ok(());
        }
        self.raw.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            if self.chunk_left > 0 {
                // Data, then the CRLF closing the chunk (counted in chunk_left).
                let take = self.chunk_left.min(self.raw.len() - at);
                let data_left = self.chunk_left.saturating_sub(2);
                let data = take.min(data_left);
                self.text.extend_from_slice(&self.raw[at..at + data]);
                self.chunk_left -= take;
                at += take;
                if self.chunk_left > 0 {
                    break;
                }
                continue;
            }
            let Some(line_end) = find(&self.raw[at..], b"\r\n") else {
                break;
            };
            let line = std::str::from_utf8(&self.raw[at..at + line_end])?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            at += line_end + 2;
            if size == 0 {
                self.ended = true;
                break;
            }
            self.chunk_left = size + 2;
        }
        self.raw.drain(..at);
        Ok(())
    }

    /// The next complete event (without its blank line).
    fn next_event(&mut self) -> Option<Vec<u8>> {
        let at = find(&self.text, b"\n\n")?;
        let event = self.text[..at].to_vec();
        self.text.drain(..at + 2);
        Some(event)
    }
}

/// One look at the server: memory, CPU, open streams.
struct Sample {
    rss_kb: Option<u64>,
    hwm_kb: Option<u64>,
    threads: Option<u64>,
    server_ticks: Option<u64>,
    redis_ticks: Option<u64>,
    gauge: Option<f64>,
}

impl Sample {
    async fn take(cfg: &Config) -> Self {
        let status = cfg.server_pid.and_then(proc_status);
        Self {
            rss_kb: status.as_ref().map(|s| s.rss_kb),
            hwm_kb: status.as_ref().map(|s| s.hwm_kb),
            threads: status.as_ref().map(|s| s.threads),
            server_ticks: cfg.server_pid.and_then(cpu_ticks),
            redis_ticks: cfg.redis_pid.and_then(cpu_ticks),
            gauge: gauge(cfg.addr, "queue_event_streams").await,
        }
    }

    fn line(&self) -> String {
        let mib = |kb: Option<u64>| kb.map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
        format!(
            "server VmRSS {} MiB, VmHWM {} MiB, queue_event_streams {}",
            mib(self.rss_kb),
            mib(self.hwm_kb),
            self.gauge.map_or("?".to_owned(), |g| g.to_string())
        )
    }
}

struct ProcStatus {
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
}

/// `VmRSS`, `VmHWM` and `Threads` of a live process.
fn proc_status(pid: u32) -> Option<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(ProcStatus {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
        threads: field("Threads:")?,
    })
}

/// CPU ticks (user + system) a live process has used.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(") ")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A gauge of the server's `/metrics` (one plain request, closed after).
async fn gauge(addr: SocketAddr, name: &str) -> Option<f64> {
    let fetch = async {
        let mut socket = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut text = Vec::new();
        socket.read_to_end(&mut text).await.ok()?;
        let text = String::from_utf8_lossy(&text);
        if !text.starts_with("HTTP/1.1 200") {
            return None;
        }
        // A gauge never set is absent: no stream was opened yet.
        match text.lines().find(|l| l.split_whitespace().next() == Some(name)) {
            Some(line) => line.split_whitespace().nth(1)?.parse().ok(),
            None => Some(0.0),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fetch).await.ok().flatten()
}

fn config() -> anyhow::Result<Config> {
    let base = env_or("BASE_URL", "http://127.0.0.1:8080");
    let hostport = base
        .strip_prefix("http://")
        .context("BASE_URL must be http://")?
        .trim_end_matches('/');
    let addr: SocketAddr = hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .with_context(|| format!("BASE_URL {base}: host:port expected"))?;
    if !addr.ip().is_loopback() {
        bail!("BASE_URL must be a loopback address, got {addr}");
    }
    let file = std::env::var("TOKENS_FILE").context("TOKENS_FILE is not set")?;
    let tokens: Vec<String> = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {file}"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        bail!("{file} holds no token");
    }
    if tokens.len() > 100_000 {
        bail!("{file}: {} tokens, at most 100,000 streams", tokens.len());
    }
    Ok(Config {
        addr,
        tokens,
        hold: Duration::from_secs(env_num("STREAMS_SECONDS", 30, 1, 3600)?),
        open_concurrency: env_num("OPEN_CONCURRENCY", 200, 1, 10_000)? as usize,
        open_timeout: Duration::from_secs(env_num("OPEN_TIMEOUT_SECONDS", 120, 1, 3600)?),
        close_wait: Duration::from_secs(env_num("CLOSE_WAIT_SECONDS", 10, 0, 600)?),
        server_pid: std::env::var("SERVER_PID").ok().and_then(|v| v.parse().ok()),
        redis_pid: std::env::var("REDIS_PID").ok().and_then(|v| v.parse().ok()),
        clk_tck: env_num("CLK_TCK", 100, 1, 100_000)? as f64,
        target_rss_mib: env_num("TARGET_RSS_MIB", 100, 1, 1_000_000)? as f64,
        summary: std::env::var("SUMMARY_JSON").ok().filter(|s| !s.is_empty()),
    })
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_num(name: &str, default: u64, min: u64, max: u64) -> anyhow::Result<u64> {
    let Ok(v) = std::env::var(name) else {
        return Ok(default);
    };
    let n: u64 = v
        .trim()
        .parse()
        .with_context(|| format!("{name}={v}: a number expected"))?;
    if !(min..=max).contains(&n) {
        bail!("{name}={n}: between {min} and {max} expected");
    }
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(round(sorted[i], 2))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
