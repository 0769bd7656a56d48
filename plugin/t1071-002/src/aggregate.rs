//! Aggregation (spec §3, §4): event-time tumbling windows aligned to the Unix
//! epoch, one aggregate per key, alerts when a key's count exceeds
//! `min_connections`. A plain state machine: `record` on each counted event,
//! `tick` every flush interval, `flush` at the end; alerts leave through a
//! callback as complete JSON lines.
//!
//! Windows close on event time: when the largest event time seen passes a
//! window's end by `allowed_lateness`. A connection whose time could not be
//! read counts at that largest time and never moves it. An event for a
//! closed window is late: it is counted in [`Stats::late_events`] and not
//! aggregated. At the key cap, new keys are not tracked
//! ([`Stats::keys_dropped`]); existing keys go on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use rulebox_plugin::json::write_str;

use crate::time::write_rfc3339;

/// Everything fixed about alerts, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub window_ms: i64,
    pub lateness_ms: i64,
    pub min_connections: u64,
    pub max_keys: usize,
    pub max_users: usize,
    pub exfil_medium_bytes: u64,
    pub exfil_high_bytes: u64,
    /// Protocol labels; a key's `protocol` indexes this.
    pub labels: Vec<String>,
}

/// One counted connection.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Its event time; `None` when the event's time could not be read (see
    /// [`Aggregator::record`]).
    pub time_ms: Option<i64>,
    pub src: IpAddr,
    pub dest: IpAddr,
    pub port: u16,
    pub protocol: u8,
    /// Group by user (QRadar's AQL) instead of process (Splunk's SPL).
    pub by_user: bool,
    pub process: &'a str,
    pub user: &'a str,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Both directions together, when the record gives only that (a Cisco
    /// ASA teardown, spec §6): `bytes_out` and `bytes_in` are then 0.
    pub bytes_total: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub late_events: u64,
    pub keys_dropped: u64,
    pub alerts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dest: IpAddr,
    port: u16,
    protocol: u8,
    by_user: bool,
    /// Interned process (by process) or user name (by user); 0 is "".
    who: u32,
}

#[derive(Debug, Clone)]
struct Agg {
    count: u64,
    bytes_sent: u64,
    bytes_received: u64,
    /// The totals of records that give only a total (see
    /// [`Observation::bytes_total`]).
    bytes_total: u64,
    /// Some record gave only a total: sent and received are then unknown.
    total_only: bool,
    first_ms: i64,
    last_ms: i64,
    /// Interned, distinct, at most `max_users`.
    users: Vec<u32>,
    users_truncated: bool,
    /// Changed since last emitted.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Names {
    index: HashMap<Box<str>, u32, FixedState>,
    names: Vec<Box<str>>,
}

impl Names {
    fn intern(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        if self.names.is_empty() {
            self.names.push("".into());
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.index.insert(s.into(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
}

#[derive(Debug, Default)]
struct Window {
    keys: KeyTable,
    names: Names,
}

/// The aggregates of one window: entries in a dense vector, found through
/// a hash table of 4-byte indices. Against a map holding the entries in
/// its buckets, this spends the power-of-two slack on indices, not on
/// whole entries (bytes per key: entry + ~10, not ~2 entries).
#[derive(Debug, Default)]
struct KeyTable {
    entries: Vec<(Key, Agg)>,
    index: hashbrown::HashTable<u32>,
    hasher: FixedState,
}

impl KeyTable {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&Key, &Agg)> {
        self.entries.iter().map(|(k, a)| (k, a))
    }

    fn find(&self, key: &Key) -> Option<usize> {
        let h = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index
            .find(h, |&i| entries[i as usize].0 == *key)
            .map(|&i| i as usize)
    }

    fn get(&self, key: &Key) -> Option<&Agg> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Agg> {
        self.find(key).map(|i| &mut self.entries[i].1)
    }

    /// Adds or replaces `key`'s aggregate.
    fn insert(&mut self, key: Key, agg: Agg) -> &mut Agg {
        if let Some(i) = self.find(&key) {
            self.entries[i].1 = agg;
            return &mut self.entries[i].1;
        }
        let i = self.entries.len();
        let h = self.hasher.hash_one(key);
        self.entries.push((key, agg));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(h, i as u32, |&j| hasher.hash_one(entries[j as usize].0));
        &mut self.entries[i].1
    }
}

impl std::ops::Index<&Key> for KeyTable {
    type Output = Agg;
    fn index(&self, key: &Key) -> &Agg {
        self.get(key).expect("key present")
    }
}

#[derive(Debug)]
pub struct Aggregator {
    s: Settings,
    windows: BTreeMap<i64, Window>,
    total_keys: usize,
    watermark: i64,
    pub stats: Stats,
    line: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Open,
    Final,
}

impl Aggregator {
    pub fn new(s: Settings) -> Aggregator {
        Aggregator {
            s,
            windows: BTreeMap::new(),
            total_keys: 0,
            watermark: i64::MIN,
            stats: Stats::default(),
            line: Vec::new(),
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.total_keys
    }

    fn window_start(&self, t: i64) -> i64 {
        t.div_euclid(self.s.window_ms) * self.s.window_ms
    }

    fn closes_at(&self, start: i64) -> i64 {
        start
            .saturating_add(self.s.window_ms)
            .saturating_add(self.s.lateness_ms)
    }

    /// The time a connection counts at: its own, or for one whose time
    /// could not be read the clock (the latest event time seen), or before
    /// any is known `now_ms` (processing time). Only a time of its own
    /// moves the clock (spec §3).
    fn event_time(&self, o: &Observation<'_>, now_ms: i64) -> i64 {
        match o.time_ms {
            Some(t) => t,
            None if self.watermark == i64::MIN => now_ms,
            None => self.watermark,
        }
    }

    /// Counts one connection; may close windows (emitting their final
    /// alerts). `now_ms` is the processing time, used only by
    /// [`Aggregator::event_time`].
    pub fn record(&mut self, o: &Observation<'_>, now_ms: i64, emit: &mut dyn FnMut(&[u8])) {
        let time_ms = self.event_time(o, now_ms);
        let start = self.window_start(time_ms);
        if self.closes_at(start) <= self.watermark {
            self.stats.late_events += 1;
            return;
        }
        if o.time_ms.is_some() && time_ms > self.watermark {
            self.watermark = time_ms;
            while let Some((&first, _)) = self.windows.first_key_value() {
                if self.closes_at(first) > self.watermark {
                    break;
                }
                self.close(first, emit);
            }
        }
        let at_cap = self.total_keys >= self.s.max_keys;
        let w = self.windows.entry(start).or_default();
        let who = w.names.intern(if o.by_user { o.user } else { o.process });
        let key = Key {
            src: o.src,
            dest: o.dest,
            port: o.port,
            protocol: o.protocol,
            by_user: o.by_user,
            who,
        };
        let agg = match w.keys.get_mut(&key) {
            Some(a) => a,
            None if at_cap => {
                self.stats.keys_dropped += 1;
                if self.stats.keys_dropped.is_power_of_two() {
                    rulebox_plugin::log(
                        rulebox_plugin::abi::LogLevel::Warn,
                        &format!(
                            "key cap of {} reached: {} new keys not tracked",
                            self.s.max_keys, self.stats.keys_dropped
                        ),
                    );
                }
                return;
            }
            None => {
                self.total_keys += 1;
                w.keys.insert(
                    key,
                    Agg {
                        count: 0,
                        bytes_sent: 0,
                        bytes_received: 0,
                        bytes_total: 0,
                        total_only: false,
                        first_ms: time_ms,
                        last_ms: time_ms,
                        users: Vec::new(),
                        users_truncated: false,
                        dirty: false,
                    },
                )
            }
        };
        agg.count += 1;
        agg.bytes_sent = agg.bytes_sent.saturating_add(o.bytes_out);
        agg.bytes_received = agg.bytes_received.saturating_add(o.bytes_in);
        if let Some(total) = o.bytes_total {
            agg.bytes_total = agg.bytes_total.saturating_add(total);
            agg.total_only = true;
        }
        agg.first_ms = agg.first_ms.min(time_ms);
        agg.last_ms = agg.last_ms.max(time_ms);
        agg.dirty = true;
        if !o.user.is_empty() {
            let uid = w.names.intern(o.user);
            if !agg.users.contains(&uid) {
                if agg.users.len() < self.s.max_users {
                    agg.users.push(uid);
                } else {
                    agg.users_truncated = true;
                }
            }
        }
    }

    /// Emits `open` alerts for alerting keys that changed since last emitted.
    pub fn tick(&mut self, emit: &mut dyn FnMut(&[u8])) {
        let min = self.s.min_connections;
        let mut due: Vec<(i64, Key)> = Vec::new();
        for (&start, w) in &self.windows {
            due.extend(
                w.keys
                    .iter()
                    .filter(|(_, a)| a.dirty && a.count > min)
                    .map(|(k, _)| (start, *k)),
            );
        }
        self.emit_sorted(due, Status::Open, emit);
    }

    /// Closes every window: `final` alerts for all alerting keys.
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        while let Some((&first, _)) = self.windows.first_key_value() {
            self.close(first, emit);
        }
    }

    fn close(&mut self, start: i64, emit: &mut dyn FnMut(&[u8])) {
        let min = self.s.min_connections;
        let due: Vec<(i64, Key)> = match self.windows.get(&start) {
            Some(w) => w
                .keys
                .iter()
                .filter(|(_, a)| a.count > min)
                .map(|(k, _)| (start, *k))
                .collect(),
            None => return,
        };
        self.emit_sorted(due, Status::Final, emit);
        if let Some(w) = self.windows.remove(&start) {
            self.total_keys -= w.keys.len();
        }
    }

    /// Emits alerts ordered by connection count, descending (ties in a fixed
    /// order so output is reproducible).
    fn emit_sorted(
        &mut self,
        mut due: Vec<(i64, Key)>,
        status: Status,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let windows = &self.windows;
        let agg = |(s, k): &(i64, Key)| &windows[s].keys[k];
        due.sort_by(|a, b| {
            agg(b)
                .count
                .cmp(&agg(a).count)
                .then(a.0.cmp(&b.0))
                .then_with(|| {
                    let (wa, wb) = (&windows[&a.0], &windows[&b.0]);
                    (
                        a.1.src,
                        a.1.dest,
                        a.1.port,
                        a.1.protocol,
                        a.1.by_user,
                        wa.names.get(a.1.who),
                    )
                        .cmp(&(
                            b.1.src,
                            b.1.dest,
                            b.1.port,
                            b.1.protocol,
                            b.1.by_user,
                            wb.names.get(b.1.who),
                        ))
                })
        });
        for (start, key) in due {
            self.write_alert(start, &key, status);
            emit(&self.line);
            self.stats.alerts += 1;
            if let Some(a) = self
                .windows
                .get_mut(&start)
                .and_then(|w| w.keys.get_mut(&key))
            {
                a.dirty = false;
            }
        }
    }

    fn write_alert(&mut self, start: i64, key: &Key, status: Status) {
        let w = &self.windows[&start];
        let a = &w.keys[key];
        let s = &self.s;
        let who = w.names.get(key.who);
        let label = s
            .labels
            .get(key.protocol as usize)
            .map_or("", |l| l.as_str());
        let risk = exfil_risk(s, a.risk_bytes());
        let mut users: Vec<&str> = a.users.iter().map(|&u| w.names.get(u)).collect();
        if key.by_user && !who.is_empty() && !users.contains(&who) {
            users.push(who);
        }
        users.sort_unstable();

        let out = &mut self.line;
        out.clear();
        out.extend_from_slice(b"{\"alert_id\":");
        write_str(out, &alert_id(start, key, label, who));
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(if status == Status::Open {
            b"\"open\""
        } else {
            b"\"final\""
        });
        out.extend_from_slice(
            b",\"rule\":\"T1071.002\",\"rule_name\":\"File transfer protocol connections to external destinations\",\
\"mitre\":{\"tactic\":\"TA0011\",\"tactic_name\":\"Command and Control\",\"technique\":\"T1071\",\
\"technique_name\":\"Application Layer Protocol\",\"subtechnique\":\"T1071.002\",\"subtechnique_name\":\"File Transfer Protocols\"},\
\"severity\":\"high\",\"confidence\":\"high\",\"window_start\":",
        );
        write_rfc3339(out, start);
        out.extend_from_slice(b",\"window_end\":");
        write_rfc3339(out, start.saturating_add(s.window_ms));
        out.extend_from_slice(b",\"first_seen\":");
        write_rfc3339(out, a.first_ms);
        out.extend_from_slice(b",\"last_seen\":");
        write_rfc3339(out, a.last_ms);
        out.extend_from_slice(b",\"src_ip\":");
        write_str(out, &key.src.to_string());
        out.extend_from_slice(b",\"dest_ip\":");
        write_str(out, &key.dest.to_string());
        let _ = write!(out, ",\"dest_port\":{},\"protocol\":", key.port);
        write_str(out, label);
        if key.by_user {
            out.extend_from_slice(b",\"username\":");
            write_str(out, who);
        } else {
            out.extend_from_slice(b",\"process_name\":");
            write_str(out, who);
        }
        out.extend_from_slice(b",\"users\":[");
        for (i, u) in users.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, u);
        }
        out.push(b']');
        if a.users_truncated {
            out.extend_from_slice(b",\"users_truncated\":true");
        }
        let _ = write!(out, ",\"connection_count\":{}", a.count);
        if a.total_only {
            let _ = write!(
                out,
                ",\"bytes_sent\":null,\"bytes_received\":null,\"bytes_total\":{},\"exfil_risk\":\"{risk}\",\"exfil_risk_basis\":\"total\"}}",
                a.risk_bytes()
            );
        } else {
            let _ = write!(
                out,
                ",\"bytes_sent\":{},\"bytes_received\":{},\"exfil_risk\":\"{risk}\",\"exfil_risk_basis\":\"sent\"}}",
                a.bytes_sent, a.bytes_received
            );
        }
    }
}

impl Agg {
    /// What the exfil risk is computed from (spec §3, §6): bytes sent, or
    /// when some record gave only a total, every byte of the key (its
    /// totals and the sent and received of its other records).
    fn risk_bytes(&self) -> u64 {
        if self.total_only {
            self.bytes_total
                .saturating_add(self.bytes_sent)
                .saturating_add(self.bytes_received)
        } else {
            self.bytes_sent
        }
    }
}

/// `HIGH` over `exfil_high_bytes`, `MEDIUM` over `exfil_medium_bytes`,
/// else `LOW` (strictly greater, as in the seeds).
fn exfil_risk(s: &Settings, bytes: u64) -> &'static str {
    if bytes > s.exfil_high_bytes {
        "HIGH"
    } else if bytes > s.exfil_medium_bytes {
        "MEDIUM"
    } else {
        "LOW"
    }
}

/// `T1071.002:<window start, epoch s>:<16 hex digits>`: the same key in the
/// same window always gets the same id, across runs and hosts.
fn alert_id(start: i64, key: &Key, label: &str, who: &str) -> String {
    let mut text = String::new();
    let _ = write!(
        text,
        "{}|{}|{}|{}|{}|{}",
        key.src,
        key.dest,
        key.port,
        label,
        if key.by_user { "user" } else { "process" },
        who
    );
    // FNV-1a 64: fixed by definition, so ids never change with a dependency.
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("T1071.002:{}:{h:016x}", start.div_euclid(1000))
}

/// The snapshot format (all integers little-endian):
///
/// ```text
/// magic "RBT1071S", u32 version, u64 settings fingerprint,
/// i64 watermark, u64 late_events, u64 keys_dropped, u64 alerts,
/// u32 windows × { i64 start, u32 names × (u32 len, bytes), u32 keys × key }
/// key: ip src, ip dest (u8 4|6 + 4|16 bytes), u16 port, u8 protocol,
///      u8 by_user, u32 who, u64 count, u64 sent, u64 received,
///      [version 2: u64 total, u8 total_only], i64 first,
///      i64 last, u8 truncated, u8 dirty, u32 users × u32
/// u64 FNV-1a of everything before it
/// ```
///
/// Version 1 (before the raw formats' totals) is still read: its keys
/// have no totals.
const MAGIC: &[u8; 8] = b"RBT1071S";
const SNAPSHOT_VERSION: u32 = 2;

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn put_ip(out: &mut Vec<u8>, ip: &IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// A bounds-checked reader over snapshot bytes.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("snapshot truncated at byte {}", self.at))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of items of at least `min_size` bytes each, checked against
    /// what is left (so a damaged count cannot ask for a huge allocation).
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.data.len() - self.at {
            return Err(format!(
                "snapshot count {n} at byte {} is impossible",
                self.at - 4
            ));
        }
        Ok(n)
    }
    fn ip(&mut self) -> Result<IpAddr, String> {
        match self.u8()? {
            4 => Ok(IpAddr::from(self.array::<4>()?)),
            6 => Ok(IpAddr::from(self.array::<16>()?)),
            t => Err(format!("snapshot has an unknown address tag {t}")),
        }
    }
}

impl Aggregator {
    /// What the state depends on: a snapshot taken under other settings
    /// cannot be used.
    fn fingerprint(&self) -> u64 {
        let mut text = format!("{}|", self.s.window_ms);
        for l in &self.s.labels {
            text.push_str(l);
            text.push('\u{1f}');
        }
        fnv1a(text.as_bytes())
    }

    /// Writes the whole state (see the format above).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.fingerprint().to_le_bytes());
        out.extend_from_slice(&self.watermark.to_le_bytes());
        for v in [
            self.stats.late_events,
            self.stats.keys_dropped,
            self.stats.alerts,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.windows.len() as u32).to_le_bytes());
        for (start, w) in &self.windows {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&(w.names.names.len() as u32).to_le_bytes());
            for n in &w.names.names {
                out.extend_from_slice(&(n.len() as u32).to_le_bytes());
                out.extend_from_slice(n.as_bytes());
            }
            out.extend_from_slice(&(w.keys.len() as u32).to_le_bytes());
            for (k, a) in w.keys.iter() {
                put_ip(out, &k.src);
                put_ip(out, &k.dest);
                out.extend_from_slice(&k.port.to_le_bytes());
                out.push(k.protocol);
                out.push(k.by_user as u8);
                out.extend_from_slice(&k.who.to_le_bytes());
                for v in [a.count, a.bytes_sent, a.bytes_received, a.bytes_total] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(a.total_only as u8);
                out.extend_from_slice(&a.first_ms.to_le_bytes());
                out.extend_from_slice(&a.last_ms.to_le_bytes());
                out.push(a.users_truncated as u8);
                out.push(a.dirty as u8);
                out.extend_from_slice(&(a.users.len() as u32).to_le_bytes());
                for u in &a.users {
                    out.extend_from_slice(&u.to_le_bytes());
                }
            }
        }
        let sum = fnv1a(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// Replaces the state with a snapshot; on any error the state is left
    /// as it was.
    pub fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        if data.len() < MAGIC.len() + 8 || &data[..MAGIC.len()] != MAGIC {
            return Err("not a T1071.002 snapshot".into());
        }
        let (body, sum) = data.split_at(data.len() - 8);
        if fnv1a(body).to_le_bytes() != sum {
            return Err("snapshot checksum mismatch (damaged)".into());
        }
        let mut r = Reader {
            data: body,
            at: MAGIC.len(),
        };
        let version = r.u32()?;
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(format!(
                "snapshot format {version} is not supported (this rule reads {SNAPSHOT_VERSION})"
            ));
        }
        if r.u64()? != self.fingerprint() {
            return Err(
                "snapshot was taken with another window_secs or protocols configuration".into(),
            );
        }
        let watermark = r.i64()?;
        let stats = Stats {
            late_events: r.u64()?,
            keys_dropped: r.u64()?,
            alerts: r.u64()?,
        };
        let mut windows = BTreeMap::new();
        let mut total_keys = 0;
        for _ in 0..r.count(16)? {
            let start = r.i64()?;
            let mut names = Names::default();
            for i in 0..r.count(4)? {
                let len = r.u32()? as usize;
                let name = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| "snapshot name is not UTF-8".to_string())?;
                if i > 0 {
                    names.index.insert(name.into(), i as u32);
                }
                names.names.push(name.into());
            }
            let n_names = names.names.len().max(1) as u32;
            let name_ok = |id: u32| {
                if id < n_names {
                    Ok(id)
                } else {
                    Err(format!("snapshot refers to unknown name {id}"))
                }
            };
            let mut keys = KeyTable::default();
            for _ in 0..r.count(60)? {
                let key = Key {
                    src: r.ip()?,
                    dest: r.ip()?,
                    port: r.u16()?,
                    protocol: r.u8()?,
                    by_user: r.u8()? != 0,
                    who: name_ok(r.u32()?)?,
                };
                if key.protocol as usize >= self.s.labels.len() {
                    return Err(format!("snapshot has unknown protocol {}", key.protocol));
                }
                let mut agg = Agg {
                    count: r.u64()?,
                    bytes_sent: r.u64()?,
                    bytes_received: r.u64()?,
                    bytes_total: if version >= 2 { r.u64()? } else { 0 },
                    total_only: version >= 2 && r.u8()? != 0,
                    first_ms: r.i64()?,
                    last_ms: r.i64()?,
                    users_truncated: r.u8()? != 0,
                    dirty: r.u8()? != 0,
                    users: Vec::new(),
                };
                for _ in 0..r.count(4)? {
                    agg.users.push(name_ok(r.u32()?)?);
                }
                keys.insert(key, agg);
            }
            total_keys += keys.len();
            windows.insert(start, Window { keys, names });
        }
        if r.at != body.len() {
            return Err("snapshot has trailing bytes".into());
        }
        self.windows = windows;
        self.total_keys = total_keys;
        self.watermark = watermark;
        self.stats = stats;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            window_ms: 86_400_000,
            lateness_ms: 0,
            min_connections: 3,
            max_keys: 1000,
            max_users: 2,
            exfil_medium_bytes: 1_048_576,
            exfil_high_bytes: 10_485_760,
            labels: vec!["FTP/FTPS".into(), "SMB".into(), "TFTP".into()],
        }
    }

    fn obs(t: i64, dest: &str, bytes_out: u64, user: &'static str) -> Observation<'static> {
        Observation {
            time_ms: Some(t),
            src: "10.0.0.5".parse().unwrap(),
            dest: dest.parse().unwrap(),
            port: 445,
            protocol: 1,
            by_user: false,
            process: "",
            user,
            bytes_out,
            bytes_in: 1,
            bytes_total: None,
        }
    }

    fn run(
        agg: &mut Aggregator,
        f: impl FnOnce(&mut Aggregator, &mut dyn FnMut(&[u8])),
    ) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        f(agg, &mut |l: &[u8]| {
            lines.push(serde_json::from_slice(l).unwrap())
        });
        lines
    }

    #[test]
    fn threshold_is_strictly_greater() {
        let mut a = Aggregator::new(settings());
        for i in 0..3 {
            run(&mut a, |a, e| a.record(&obs(i, "8.8.8.8", 1, ""), 0, e));
        }
        assert!(
            run(&mut a, |a, e| a.tick(e)).is_empty(),
            "3 connections must not alert"
        );
        run(&mut a, |a, e| a.record(&obs(3, "8.8.8.8", 1, ""), 0, e));
        let alerts = run(&mut a, |a, e| a.tick(e));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["connection_count"], 4);
        assert_eq!(alerts[0]["status"], "open");
        assert_eq!(alerts[0]["process_name"], "");
    }

    #[test]
    fn tick_emits_only_changes_and_flush_is_final() {
        let mut a = Aggregator::new(settings());
        for i in 0..4 {
            run(&mut a, |a, e| a.record(&obs(i, "8.8.8.8", 1, ""), 0, e));
        }
        assert_eq!(run(&mut a, |a, e| a.tick(e)).len(), 1);
        assert!(
            run(&mut a, |a, e| a.tick(e)).is_empty(),
            "unchanged keys are not re-emitted"
        );
        run(&mut a, |a, e| a.record(&obs(5, "8.8.8.8", 1, ""), 0, e));
        let again = run(&mut a, |a, e| a.tick(e));
        assert_eq!(again[0]["connection_count"], 5);
        let fin = run(&mut a, |a, e| a.flush(e));
        assert_eq!(fin.len(), 1);
        assert_eq!(fin[0]["status"], "final");
        assert_eq!(fin[0]["alert_id"], again[0]["alert_id"]);
        assert_eq!(a.tracked_keys(), 0);
    }

    #[test]
    fn exfil_risk_boundaries() {
        for (bytes, risk) in [
            (1_048_576, "LOW"),
            (1_048_577, "MEDIUM"),
            (10_485_760, "MEDIUM"),
            (10_485_761, "HIGH"),
        ] {
            let mut a = Aggregator::new(settings());
            for i in 0..4 {
                run(&mut a, |a, e| {
                    a.record(&obs(i, "8.8.8.8", if i == 0 { bytes } else { 0 }, ""), 0, e)
                });
            }
            let f = run(&mut a, |a, e| a.flush(e));
            assert_eq!(f[0]["exfil_risk"], risk, "{bytes}");
            assert_eq!(f[0]["bytes_sent"], bytes);
        }
    }

    #[test]
    fn total_only_records_give_bytes_total_and_a_risk_on_the_total() {
        let mut a = Aggregator::new(settings());
        for i in 0..4 {
            let o = Observation {
                bytes_out: 0,
                bytes_in: 0,
                bytes_total: Some(300_000),
                ..obs(i, "8.8.8.8", 0, "")
            };
            run(&mut a, |a, e| a.record(&o, 0, e));
        }
        let f = run(&mut a, |a, e| a.flush(e));
        assert_eq!(f[0]["bytes_total"], 1_200_000);
        assert!(f[0]["bytes_sent"].is_null() && f[0]["bytes_received"].is_null());
        assert_eq!(f[0]["exfil_risk"], "MEDIUM", "from the total");
        assert_eq!(f[0]["exfil_risk_basis"], "total");
        let mut b = Aggregator::new(settings());
        for i in 0..4 {
            run(&mut b, |a, e| a.record(&obs(i, "8.8.8.8", 5, ""), 0, e));
        }
        let f = run(&mut b, |a, e| a.flush(e));
        assert_eq!(f[0]["exfil_risk_basis"], "sent");
        assert!(f[0].get("bytes_total").is_none());
    }

    #[test]
    fn a_version_1_snapshot_is_still_restored() {
        let mut a = Aggregator::new(settings());
        run(&mut a, |a, e| a.record(&obs(7, "8.8.8.8", 5, "bob"), 0, e));
        let mut v2 = Vec::new();
        a.snapshot(&mut v2);
        // The same state as version 1 wrote it: no total, no total_only.
        let body = &v2[..v2.len() - 8];
        let key_end = body.len() - 4 - 2 - 8 - 8 - 4 - 4; // users(1), flags, last, first
        let mut v1 = body[..key_end - 9].to_vec();
        v1.extend_from_slice(&body[key_end..]);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let sum = fnv1a(&v1);
        v1.extend_from_slice(&sum.to_le_bytes());
        let mut b = Aggregator::new(settings());
        b.restore(&v1).unwrap();
        let mut again = Vec::new();
        b.snapshot(&mut again);
        assert_eq!(again, v2);
    }

    #[test]
    fn windows_close_on_event_time_and_late_events_are_counted() {
        let mut a = Aggregator::new(settings());
        let day = 86_400_000;
        for i in 0..4 {
            run(&mut a, |a, e| {
                a.record(&obs(i * 1000, "8.8.8.8", 1, ""), 0, e)
            });
        }
        // An event in the next window closes the first.
        let closed = run(&mut a, |a, e| {
            a.record(&obs(day + 5, "8.8.4.4", 1, ""), 0, e)
        });
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0]["status"], "final");
        assert_eq!(closed[0]["window_start"], "1970-01-01T00:00:00.000Z");
        assert_eq!(closed[0]["window_end"], "1970-01-02T00:00:00.000Z");
        assert_eq!(closed[0]["first_seen"], "1970-01-01T00:00:00.000Z");
        assert_eq!(closed[0]["last_seen"], "1970-01-01T00:00:03.000Z");
        run(&mut a, |a, e| a.record(&obs(10, "8.8.8.8", 1, ""), 0, e));
        assert_eq!(a.stats.late_events, 1);
    }

    #[test]
    fn an_untimed_connection_counts_at_the_clock_and_never_moves_it() {
        let mut a = Aggregator::new(settings());
        let day = 86_400_000;
        let untimed = |dest| Observation {
            time_ms: None,
            ..obs(0, dest, 1, "")
        };
        // No event time yet: the processing time.
        run(&mut a, |a, e| a.record(&untimed("1.1.1.1"), 5 * day + 7, e));
        assert_eq!(a.watermark, i64::MIN, "the clock did not move");
        run(&mut a, |a, e| {
            a.record(&obs(1000, "8.8.8.8", 1, ""), 5 * day, e)
        });
        // Now the clock (1000), whatever the processing time says.
        for _ in 0..4 {
            run(&mut a, |a, e| a.record(&untimed("9.9.9.9"), 5 * day, e));
        }
        assert_eq!(a.watermark, 1000);
        assert_eq!(a.stats.late_events, 0);
        let f = run(&mut a, |a, e| a.flush(e));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["dest_ip"], "9.9.9.9");
        assert_eq!(f[0]["first_seen"], "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn key_cap_drops_new_keys_only() {
        let mut s = settings();
        s.max_keys = 2;
        let mut a = Aggregator::new(s);
        for d in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"] {
            run(&mut a, |a, e| a.record(&obs(0, d, 1, ""), 0, e));
        }
        assert_eq!(a.tracked_keys(), 2);
        assert_eq!(a.stats.keys_dropped, 1);
    }

    #[test]
    fn users_are_sorted_distinct_and_bounded() {
        let mut a = Aggregator::new(settings());
        for u in ["zed", "amy", "zed", "bob", ""] {
            run(&mut a, |a, e| a.record(&obs(0, "8.8.8.8", 1, u), 0, e));
        }
        let f = run(&mut a, |a, e| a.flush(e));
        assert_eq!(f[0]["users"], serde_json::json!(["amy", "zed"]));
        assert_eq!(f[0]["users_truncated"], true);
    }

    #[test]
    fn alerts_are_ordered_by_count() {
        let mut a = Aggregator::new(settings());
        for (d, n) in [("1.1.1.1", 4), ("2.2.2.2", 6), ("3.3.3.3", 5)] {
            for i in 0..n {
                run(&mut a, |a, e| a.record(&obs(i, d, 1, ""), 0, e));
            }
        }
        let f = run(&mut a, |a, e| a.flush(e));
        let counts: Vec<_> = f
            .iter()
            .map(|v| v["connection_count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, [6, 5, 4]);
    }

    #[test]
    fn alert_id_is_stable_and_distinct() {
        let k = |port| Key {
            src: "10.0.0.1".parse().unwrap(),
            dest: "8.8.8.8".parse().unwrap(),
            port,
            protocol: 1,
            by_user: false,
            who: 0,
        };
        assert_eq!(
            alert_id(0, &k(445), "SMB", ""),
            alert_id(0, &k(445), "SMB", "")
        );
        assert_ne!(
            alert_id(0, &k(445), "SMB", ""),
            alert_id(0, &k(139), "SMB", "")
        );
        assert_ne!(
            alert_id(0, &k(445), "SMB", ""),
            alert_id(86_400_000, &k(445), "SMB", "")
        );
        assert!(alert_id(86_400_000, &k(445), "SMB", "").starts_with("T1071.002:86400:"));
    }
}
