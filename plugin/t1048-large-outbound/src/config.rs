//! The rule's configuration: the `[transforms.<id>.config]` table. Every
//! default of the spec (`docs/t1048-large-outbound.md`) is a key here.

use serde::Deserialize;

/// Private, loopback, link-local and carrier-grade NAT ranges (the same
/// list as the T1071.002 rule's, so a chained pipeline agrees on "inside").
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

/// The source detection's threshold: `sum_bytes_out > 1070000000`.
pub const DEFAULT_THRESHOLD_BYTES: u64 = 1_070_000_000;

/// Longest window accepted: a week.
pub const MAX_WINDOW_SECS: u64 = 7 * 86_400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Schema preset: `cim`, `ecs`, `qradar`, or `auto` (chosen per event
    /// from the destination field present).
    pub schema: SchemaName,
    /// Length of the event-time tumbling window, aligned to the Unix epoch
    /// (the source's `span=2m`).
    pub window_secs: u64,
    /// How far event time may run past a window's end before it closes.
    pub allowed_lateness_secs: u64,
    /// A key alerts when the bytes it sent in a window are greater than this.
    pub threshold_bytes: u64,
    /// The internal networks (replaces the default list).
    pub internal_networks: Vec<String>,
    /// Networks added to `internal_networks`.
    pub extra_internal_networks: Vec<String>,
    /// Destinations never counted (backup targets, known upload services):
    /// the source's filter macro. CIDR or bare addresses.
    pub excluded_destinations: Vec<String>,
    /// Cap on tracked keys over all open windows.
    pub max_keys: usize,
    /// The key of the object added to each event.
    pub enrich_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schema: SchemaName::Auto,
            window_secs: 120,
            allowed_lateness_secs: 60,
            threshold_bytes: DEFAULT_THRESHOLD_BYTES,
            internal_networks: DEFAULT_INTERNAL_NETWORKS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            extra_internal_networks: Vec::new(),
            excluded_destinations: Vec::new(),
            max_keys: 100_000,
            enrich_key: "t1048".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaName {
    Auto,
    Cim,
    Ecs,
    Qradar,
}

impl Config {
    /// Reads the configuration's JSON text and checks what serde cannot.
    pub fn parse(json: &[u8]) -> Result<Config, String> {
        let text = if json.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            json
        };
        let c: Config =
            serde_json::from_slice(text).map_err(|e| format!("invalid configuration: {e}"))?;
        if c.window_secs == 0 || c.window_secs > MAX_WINDOW_SECS {
            return Err(format!(
                "window_secs must be 1 to {MAX_WINDOW_SECS}, not {}",
                c.window_secs
            ));
        }
        if c.allowed_lateness_secs > MAX_WINDOW_SECS {
            return Err(format!(
                "allowed_lateness_secs must be at most {MAX_WINDOW_SECS}, not {}",
                c.allowed_lateness_secs
            ));
        }
        if c.max_keys == 0 {
            return Err("max_keys must be at least 1".into());
        }
        if c.enrich_key.is_empty() {
            return Err("enrich_key must not be empty".into());
        }
        Ok(c)
    }
}
