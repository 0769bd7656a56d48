//! The T1071.002 rule's classification for the `cim` preset, written again
//! natively for the peers (docs/t1071-002.md §1 and §2): the protocol by
//! destination port, external against the default internal networks,
//! counted when permitted and outbound; and the label object the rule
//! adds under `t1071`.

use std::net::IpAddr;

/// The rule's default internal networks (spec §2).
const INTERNAL: [&str; 9] = [
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

/// The watched ports and their labels (spec §2, `protocols`).
pub fn protocol(port: u16) -> Option<&'static str> {
    match port {
        20 | 21 | 990 => Some("FTP/FTPS"),
        139 | 445 => Some("SMB"),
        69 => Some("TFTP"),
        _ => None,
    }
}

/// The internal networks as address and prefix length.
#[derive(Debug, Clone)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Default for Networks {
    fn default() -> Networks {
        let parse = |c: &str| {
            let (a, p) = c.split_once('/').expect("cidr");
            (a.parse().expect("address"), p.parse().expect("prefix"))
        };
        Networks(INTERNAL.iter().map(|c| parse(c)).collect())
    }
}

impl Networks {
    /// Whether `ip` (an IPv4-mapped IPv6 address as the IPv4 it carries)
    /// lies in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

/// An address field read as the rule reads it: trimmed, an IP or not.
pub fn address(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// A port given as a string (`"21"`, `" 21 "`, `"21.0"`).
pub fn port_from_str(s: &str) -> Option<u16> {
    let s = s.trim();
    s.parse::<u16>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().and_then(port_from_f64))
}

/// A port given as a JSON number: whole and at most 65535.
pub fn port_from_f64(f: f64) -> Option<u16> {
    (f.fract() == 0.0 && (0.0..=65535.0).contains(&f)).then_some(f as u16)
}

/// A time in seconds as a decimal string (`"1763683200.250"`), to
/// milliseconds (fractions kept to the millisecond).
pub fn seconds_str_to_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) || secs < 0 {
        return None;
    }
    let mut ms = 0i64;
    for i in 0..3 {
        ms = ms * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

/// What the rule decided for one event with a readable destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    pub protocol: Option<&'static str>,
    /// `None` when the destination is not an IP address.
    pub external: Option<bool>,
    pub counted: bool,
}

/// The connection an event describes, as far as classifying needs it.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub src: Option<&'a str>,
    pub dest: &'a str,
    pub port: Option<u16>,
    pub allowed: bool,
}

/// Classifies one event (spec §2, no allowlist): the label, and for a
/// counted event its source and destination addresses.
pub fn classify(nets: &Networks, f: Fields) -> (Label, Option<(IpAddr, IpAddr)>) {
    let protocol = f.port.and_then(protocol);
    let dest = address(f.dest);
    let external = dest.map(|d| !nets.contains(d));
    let src = f.src.and_then(address).filter(|&s| nets.contains(s));
    let counted = protocol.is_some() && f.allowed && external == Some(true) && src.is_some();
    let label = Label {
        protocol,
        external,
        counted,
    };
    let pair = match (counted, src, dest) {
        (true, Some(s), Some(d)) => Some((s, d)),
        _ => None,
    };
    (label, pair)
}

impl Label {
    /// The label object as the rule writes it:
    /// `{"protocol":"FTP/FTPS","external":true,"counted":true}`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(p) = self.protocol {
            out.extend_from_slice(b"\"protocol\":\"");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\",");
        }
        match self.external {
            Some(true) => out.extend_from_slice(b"\"external\":true,"),
            Some(false) => out.extend_from_slice(b"\"external\":false,"),
            None => {}
        }
        out.extend_from_slice(if self.counted {
            b"\"counted\":true}"
        } else {
            b"\"counted\":false}"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_as_the_spec_example() {
        let nets = Networks::default();
        let f = Fields {
            src: Some("10.0.0.5"),
            dest: "203.0.113.9",
            port: Some(21),
            allowed: true,
        };
        let (label, pair) = classify(&nets, f);
        let mut out = Vec::new();
        label.write(&mut out);
        assert_eq!(
            out,
            br#"{"protocol":"FTP/FTPS","external":true,"counted":true}"#
        );
        assert!(pair.is_some());
        let inbound = Fields {
            src: Some("203.0.113.9"),
            dest: "172.20.1.1",
            ..f
        };
        assert_eq!(
            classify(&nets, inbound).0,
            Label {
                protocol: Some("FTP/FTPS"),
                external: Some(false),
                counted: false
            }
        );
    }

    #[test]
    fn reads_ports_and_times_tolerantly() {
        assert_eq!(port_from_str(" 21 "), Some(21));
        assert_eq!(port_from_str("21.0"), Some(21));
        assert_eq!(port_from_str("70000"), None);
        assert_eq!(port_from_f64(21.5), None);
        assert_eq!(seconds_str_to_ms("1763683200.25"), Some(1_763_683_200_250));
        assert_eq!(seconds_str_to_ms("x"), None);
        assert!(Networks::default().contains("::ffff:10.1.2.3".parse().unwrap()));
    }
}
