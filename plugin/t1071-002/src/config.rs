//! The rule's configuration: the `[transforms.<id>.config]` table. Every
//! default of the spec (`docs/t1071-002.md`) is a key here.

use serde::Deserialize;

use crate::time::Unit;

/// The seeds' internal networks, with the spec's corrections (all of
/// 172.16.0.0/12, plus IPv6 loopback, ULA and link-local).
pub const DEFAULT_INTERNAL_NETWORKS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What this instance does: `all` (classify, enrich and aggregate),
    /// `classify` (classify and enrich; counted connections leave as
    /// observation records on the `observations` output, so several
    /// instances can share the work) or `aggregate` (aggregates those
    /// records into alerts). Both stages need the same `protocols`.
    pub stage: Stage,
    /// Schema preset: `cim`, `qradar`, `ecs`, `ocsf`, `zeek`, `sysmon`, or
    /// `auto` (chosen per event from the fields present).
    pub schema: PresetName,
    /// Where the event sits in the line (a dotted path), when a shipper
    /// wraps it: an object there is the event; a string there holding a
    /// JSON object is read as that object. Every preset path and every
    /// override in `fields` is then taken inside it. Absent: the line is the
    /// event.
    pub event_path: Option<String>,
    /// Field paths that override the preset's (dotted paths; a key holding
    /// dots is found too). Under `auto` they apply to every preset and do
    /// not take part in choosing it.
    pub fields: FieldOverrides,
    /// The internal networks (replaces the default list).
    pub internal_networks: Vec<String>,
    /// Networks added to `internal_networks`.
    pub extra_internal_networks: Vec<String>,
    /// Watched ports and their protocol labels.
    pub protocols: Vec<ProtocolConfig>,
    /// Known-good destinations: matching events are labelled and not counted.
    pub allowlist: Vec<AllowConfig>,
    /// A key alerts when its connection count in a window is greater than this.
    pub min_connections: u64,
    /// Length of the event-time tumbling window, aligned to the Unix epoch.
    pub window_secs: u64,
    /// How far event time may run past a window's end before it closes.
    pub allowed_lateness_secs: u64,
    /// Cap on tracked keys over all open windows.
    pub max_keys: usize,
    /// Cap on distinct users kept per key.
    pub max_users_per_key: usize,
    /// Exfil risk is MEDIUM when bytes sent exceed this.
    pub exfil_medium_bytes: u64,
    /// Exfil risk is HIGH when bytes sent exceed this.
    pub exfil_high_bytes: u64,
    /// The key of the object added to each event.
    pub enrich_key: String,
    /// The raw formats read from lines that are not JSON objects: `auto`
    /// (all of them), or a list of `zeek_tsv`, `asa`, `cef`, `leef`,
    /// `panos`, `fortigate`, `kv`; `[]` reads JSON only.
    pub raw_formats: Vec<RawFormat>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stage: Stage::All,
            schema: PresetName::Auto,
            event_path: None,
            fields: FieldOverrides::default(),
            internal_networks: DEFAULT_INTERNAL_NETWORKS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            extra_internal_networks: Vec::new(),
            protocols: vec![
                ProtocolConfig {
                    label: "FTP/FTPS".into(),
                    ports: vec![20, 21, 990],
                },
                ProtocolConfig {
                    label: "SMB".into(),
                    ports: vec![139, 445],
                },
                ProtocolConfig {
                    label: "TFTP".into(),
                    ports: vec![69],
                },
            ],
            allowlist: Vec::new(),
            min_connections: 3,
            window_secs: 86_400,
            allowed_lateness_secs: 300,
            max_keys: 1_000_000,
            max_users_per_key: 32,
            exfil_medium_bytes: 1_048_576,
            exfil_high_bytes: 10_485_760,
            enrich_key: "t1071".into(),
            raw_formats: vec![RawFormat::Auto],
        }
    }
}

/// See [`Config::stage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    All,
    Classify,
    Aggregate,
}

/// See [`Config::schema`]. Named here, with the rest of what a user
/// writes, so that `schema` (which reads the overrides) and `config` do not
/// import each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetName {
    Cim,
    Qradar,
    Ecs,
    Ocsf,
    Zeek,
    Sysmon,
    Auto,
}

/// See [`Config::raw_formats`] (spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFormat {
    Auto,
    ZeekTsv,
    Asa,
    Cef,
    Leef,
    Panos,
    Fortigate,
    Kv,
}

/// Field paths overriding the preset's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOverrides {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub port: Option<String>,
    pub bytes_out: Option<String>,
    pub bytes_in: Option<String>,
    pub user: Option<String>,
    pub process: Option<String>,
    pub time: Option<String>,
    /// How a numeric `time` counts: `s` or `ms` (default: the preset's).
    pub time_unit: Option<Unit>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolConfig {
    pub label: String,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// Destination network (CIDR, or a single address).
    pub destination: String,
    /// Destination port; any when absent.
    pub port: Option<u16>,
    /// Source network; any when absent.
    pub source: Option<String>,
    /// Why this traffic is expected; copied into the event.
    pub reason: String,
}

impl Config {
    /// Parses the configuration JSON the host hands over.
    pub fn from_json(bytes: &[u8]) -> Result<Config, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| "configuration is not utf-8".to_string())?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        let cfg: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if cfg.window_secs == 0 {
            return Err("window_secs must be greater than 0".into());
        }
        if cfg.exfil_medium_bytes > cfg.exfil_high_bytes {
            return Err("exfil_medium_bytes must not exceed exfil_high_bytes".into());
        }
        if cfg.enrich_key.is_empty() {
            return Err("enrich_key must not be empty".into());
        }
        if cfg.protocols.len() > 250 {
            return Err("at most 250 protocols".into());
        }
        if let Some(p) = &cfg.event_path
            && (p.is_empty() || p.starts_with('.') || p.ends_with('.'))
        {
            return Err(format!("event_path {p:?} is not a dotted path"));
        }
        Ok(cfg)
    }
}
