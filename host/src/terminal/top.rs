//! `rulebox top --address HOST:PORT`: a live view of a running pipeline,
//! read from its `[api]` endpoint's `/metrics` every interval: per
//! component, events in and out per second, totals, errors and queued
//! batches. On a terminal the view is redrawn in place; otherwise a table
//! is printed per interval (for scripts: `--iterations`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::table::{self, Table};

/// A component's counters in one scrape.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counters {
    pub received: f64,
    pub sent: f64,
    pub errors: f64,
    pub queued: f64,
}

/// Components by (kind, id).
pub type Scrape = BTreeMap<(String, String), Counters>;

/// `GET /metrics` from `address`, within `timeout`.
pub fn fetch(address: &str, timeout: Duration) -> Result<String, String> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(address)
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{address}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    // The endpoint's answer is bounded by the pipeline's components.
    s.take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.to_string())
}

/// The counters `top` shows, from a Prometheus text answer.
pub fn parse(metrics: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (Some(id), Some(kind)) = (
            label(labels, "component_id"),
            label(labels, "component_kind"),
        ) else {
            continue;
        };
        let c = out.entry((kind, id)).or_default();
        match name {
            "rulebox_component_received_events_total" => c.received += value,
            "rulebox_component_sent_events_total" => c.sent += value,
            "rulebox_component_errors_total" => c.errors += value,
            "rulebox_component_queue_batches" => c.queued += value,
            _ => {}
        }
    }
    // What a source takes in, it passes on.
    for ((kind, _), c) in out.iter_mut() {
        if kind == "source" {
            c.sent = c.received;
        }
    }
    out
}

/// A label's value (the exporter's escapes left as they are).
fn label(labels: &str, key: &str) -> Option<String> {
    let at = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[at..].find('"')?;
    Some(labels[at..at + end].to_string())
}

/// The view of `now`, with rates against `before` taken `dt` earlier.
pub fn render(now: &Scrape, before: Option<&Scrape>, dt: Duration) -> String {
    let mut t = Table::new(&[
        "KIND",
        "COMPONENT",
        "IN/S#",
        "OUT/S#",
        "IN#",
        "OUT#",
        "ERRORS#",
        "QUEUED#",
    ]);
    let secs = dt.as_secs_f64().max(1e-3);
    for ((kind, id), c) in now {
        let prev = before.and_then(|b| b.get(&(kind.clone(), id.clone())));
        let per_sec = |f: fn(&Counters) -> f64| match prev {
            Some(p) => table::rate((f(c) - f(p)).max(0.0) / secs),
            None => "-".into(),
        };
        t.row(vec![
            kind.clone(),
            id.clone(),
            per_sec(|c| c.received),
            per_sec(|c| c.sent),
            table::count(c.received as u64),
            table::count(c.sent as u64),
            table::count(c.errors as u64),
            table::count(c.queued as u64),
        ]);
    }
    t.render()
}

/// Scrapes `address` every `interval`, `iterations` times (none: until
/// interrupted), printing the view: redrawn in place when `redraw`.
pub fn run(
    address: &str,
    interval: Duration,
    iterations: Option<u64>,
    redraw: bool,
) -> Result<(), String> {
    let mut before: Option<(Instant, Scrape)> = None;
    let mut shown = 0u64;
    loop {
        let at = Instant::now();
        let now = parse(&fetch(address, Duration::from_secs(5))?);
        let view = render(
            &now,
            before.as_ref().map(|(_, s)| s),
            before.as_ref().map_or(interval, |(t, _)| at - *t),
        );
        let mut out = std::io::stdout().lock();
        if redraw {
            let _ = write!(out, "\x1b[H\x1b[2J");
        } else if shown > 0 {
            let _ = writeln!(out);
        }
        let _ = write!(
            out,
            "rulebox top — {address}, every {:.1} s\n\n{view}",
            interval.as_secs_f64()
        );
        let _ = out.flush();
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        before = Some((at, now));
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# HELP x y\n# TYPE rulebox_component_received_events_total counter\nrulebox_component_received_events_total{component_id=\"in\",component_kind=\"source\"} 100\nrulebox_component_received_events_total{component_id=\"t\",component_kind=\"transform\"} 90\nrulebox_component_sent_events_total{component_id=\"t\",component_kind=\"transform\"} 80\nrulebox_component_errors_total{component_id=\"t\",component_kind=\"transform\",reason=\"malformed\"} 3\nrulebox_component_errors_total{component_id=\"t\",component_kind=\"transform\",reason=\"trap\"} 1\nrulebox_component_queue_batches{component_id=\"t\",component_kind=\"transform\"} 2\n";

    #[test]
    fn counters_summed_per_component_and_rates_between_scrapes() {
        let now = parse(METRICS);
        let t = now[&("transform".to_string(), "t".to_string())];
        assert_eq!(
            t,
            Counters {
                received: 90.0,
                sent: 80.0,
                errors: 4.0,
                queued: 2.0
            }
        );
        let mut before = now.clone();
        before
            .get_mut(&("transform".into(), "t".into()))
            .unwrap()
            .received = 40.0;
        let view = render(&now, Some(&before), Duration::from_secs(2));
        let row = view.lines().find(|l| l.starts_with("transform")).unwrap();
        assert!(row.contains("25/s") && row.contains("  0/s"), "{view}");
        let first = render(&now, None, Duration::from_secs(1));
        assert!(first.lines().nth(1).unwrap().contains(" - "), "{first}");
    }
}
