//! The T1071.002 rule's aggregation and alerts for the `cim` preset,
//! written again natively for the aggregating peers (docs/t1071-002.md §3
//! and §4, default settings): tumbling one-day windows closed by the
//! latest event time plus the allowed lateness, a key alerting above three
//! connections, `final` alerts at a window's close and at end of input.
//! (No ticks: the peers run for seconds, the rule ticks every minute.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde_json::json;

const WINDOW_MS: i64 = 86_400_000;
const LATENESS_MS: i64 = 300_000;
const MIN_CONNECTIONS: u64 = 3;
const MAX_USERS: usize = 32;
const EXFIL_HIGH: u64 = 10_485_760;
const EXFIL_MEDIUM: u64 = 1_048_576;

/// One aggregate's key (spec §3): the `cim` preset groups by process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub src: IpAddr,
    pub dest: IpAddr,
    pub port: u16,
    pub protocol: &'static str,
    pub process: String,
}

/// One counted connection.
#[derive(Debug)]
pub struct Observation<'a> {
    pub key: Key,
    pub time_ms: Option<i64>,
    pub sent: u64,
    pub received: u64,
    pub user: Option<&'a str>,
}

#[derive(Debug)]
struct Agg {
    count: u64,
    sent: u64,
    received: u64,
    first: i64,
    last: i64,
    users: BTreeSet<String>,
    truncated: bool,
}

/// Open windows by start, and the clock (latest counted event time).
#[derive(Debug, Default)]
pub struct Tally {
    windows: BTreeMap<i64, HashMap<Key, Agg>>,
    clock: Option<i64>,
    /// Counted events for windows already closed (not aggregated).
    pub late: u64,
}

impl Tally {
    /// Adds `o`; alerts of the windows it closes go to `alerts`, one line
    /// each. `now_ms` places an event without a time before any is known.
    pub fn record(&mut self, o: Observation, now_ms: i64, alerts: &mut Vec<u8>) {
        let t = match o.time_ms {
            Some(t) => {
                self.clock = Some(self.clock.map_or(t, |c| c.max(t)));
                t
            }
            None => self.clock.unwrap_or(now_ms),
        };
        let start = t.div_euclid(WINDOW_MS) * WINDOW_MS;
        let clock = self.clock.unwrap_or(t);
        if start + WINDOW_MS + LATENESS_MS <= clock && !self.windows.contains_key(&start) {
            self.late += 1;
        } else {
            let agg = self
                .windows
                .entry(start)
                .or_default()
                .entry(o.key)
                .or_insert(Agg {
                    count: 0,
                    sent: 0,
                    received: 0,
                    first: t,
                    last: t,
                    users: BTreeSet::new(),
                    truncated: false,
                });
            agg.count += 1;
            agg.sent = agg.sent.saturating_add(o.sent);
            agg.received = agg.received.saturating_add(o.received);
            agg.first = agg.first.min(t);
            agg.last = agg.last.max(t);
            if let Some(u) = o.user.map(str::trim).filter(|u| !u.is_empty()) {
                if agg.users.len() < MAX_USERS || agg.users.contains(u) {
                    agg.users.insert(u.to_string());
                } else {
                    agg.truncated = true;
                }
            }
        }
        while let Some((&s, _)) = self.windows.first_key_value() {
            if s + WINDOW_MS + LATENESS_MS > clock {
                break;
            }
            let keys = self.windows.remove(&s).unwrap_or_default();
            write_alerts(s, keys, alerts);
        }
    }

    /// End of input: every open window closes.
    pub fn flush(&mut self, alerts: &mut Vec<u8>) {
        for (s, keys) in std::mem::take(&mut self.windows) {
            write_alerts(s, keys, alerts);
        }
    }
}

fn write_alerts(start: i64, keys: HashMap<Key, Agg>, out: &mut Vec<u8>) {
    let mut due: Vec<_> = keys
        .into_iter()
        .filter(|(_, a)| a.count > MIN_CONNECTIONS)
        .collect();
    due.sort_by_key(|(_, a)| std::cmp::Reverse(a.count));
    for (k, a) in due {
        let risk = if a.sent > EXFIL_HIGH {
            "HIGH"
        } else if a.sent > EXFIL_MEDIUM {
            "MEDIUM"
        } else {
            "LOW"
        };
        let mut v = json!({
            "alert_id": alert_id(start, &k),
            "status": "final",
            "rule": "T1071.002",
            "rule_name": "File transfer protocol connections to external destinations",
            "mitre": {"tactic": "TA0011", "tactic_name": "Command and Control",
                "technique": "T1071", "technique_name": "Application Layer Protocol",
                "subtechnique": "T1071.002", "subtechnique_name": "File Transfer Protocols"},
            "severity": "high", "confidence": "high",
            "window_start": rfc3339(start), "window_end": rfc3339(start + WINDOW_MS),
            "first_seen": rfc3339(a.first), "last_seen": rfc3339(a.last),
            "src_ip": k.src.to_string(), "dest_ip": k.dest.to_string(),
            "dest_port": k.port, "protocol": k.protocol, "process_name": k.process,
            "users": a.users, "connection_count": a.count,
            "bytes_sent": a.sent, "bytes_received": a.received,
            "exfil_risk": risk, "exfil_risk_basis": "sent",
        });
        if a.truncated {
            v["users_truncated"] = json!(true);
        }
        serde_json::to_writer(&mut *out, &v).expect("write to memory");
        out.push(b'\n');
    }
}

/// `T1071.002:<window start, s>:<FNV-1a 64 of the key, hex>` (spec §4).
fn alert_id(start: i64, k: &Key) -> String {
    let text = format!(
        "{}|{}|{}|{}|process|{}",
        k.src, k.dest, k.port, k.protocol, k.process
    );
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("T1071.002:{}:{h:016x}", start.div_euclid(1000))
}

/// Milliseconds since the epoch as `2025-11-21T00:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t: i64, user: Option<&str>) -> Observation<'_> {
        Observation {
            key: Key {
                src: "10.0.0.5".parse().unwrap(),
                dest: "203.0.113.9".parse().unwrap(),
                port: 21,
                protocol: "FTP/FTPS",
                process: "ftp.exe".into(),
            },
            time_ms: Some(t),
            sent: 524_288,
            received: 1280,
            user,
        }
    }

    #[test]
    fn four_connections_alert_as_the_spec_example() {
        let mut t = Tally::default();
        let mut out = Vec::new();
        let day = 1_763_683_200_000;
        for (i, u) in [Some("alice"), Some("bob"), None, Some("alice")]
            .into_iter()
            .enumerate()
        {
            t.record(obs(day + 32_400_000 + i as i64 * 63_333, u), 0, &mut out);
        }
        assert!(out.is_empty(), "the window is still open");
        t.flush(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["alert_id"], "T1071.002:1763683200:fa2f118b7872afc2");
        assert_eq!(v["window_start"], "2025-11-21T00:00:00.000Z");
        assert_eq!(v["first_seen"], "2025-11-21T09:00:00.000Z");
        assert_eq!(v["users"], json!(["alice", "bob"]));
        assert_eq!(v["exfil_risk"], "MEDIUM");
    }

    #[test]
    fn three_connections_do_not_alert() {
        let mut t = Tally::default();
        let mut out = Vec::new();
        for i in 0..3 {
            t.record(obs(1_763_683_200_000 + i, None), 0, &mut out);
        }
        t.flush(&mut out);
        assert!(out.is_empty());
    }
}
