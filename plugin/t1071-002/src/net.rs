//! Addresses: internal networks, IPv4-mapped IPv6, and the allowlist.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::AllowConfig;

/// Parses an address as found in an event (surrounding space trimmed). Host
/// names, zone ids and garbage are not addresses.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let t = s.trim();
    match parse_dotted_quad(t.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4.into())),
        None => t.parse().ok(),
    }
}

/// The common case, `a.b.c.d` in canonical form (1–3 digits per part, no
/// leading zero, each ≤ 255), read without the general parser; anything
/// else is left to `std` (which answers the same for these).
pub(crate) fn parse_dotted_quad(b: &[u8]) -> Option<u32> {
    // Part by part, each a bounded look at three bytes: few values live
    // at once, so the loop stays in registers once compiled to wasm (a
    // byte-at-a-time loop over four counters spilled them to the stack).
    let (mut addr, mut i) = (0u32, 0usize);
    for k in 0..4 {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let (part, len) = octet(b, i)?;
        addr = addr << 8 | part;
        i += len;
    }
    (i == b.len()).then_some(addr)
}

/// The part of a dotted quad at `i`: its value and length (1–3 digits, no
/// leading zero, at most 255). A fourth digit is left for the caller, which
/// then finds no dot.
#[inline(always)]
fn octet(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let digit = |k: usize| {
        let d = b.get(i + k)?.wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let first = digit(0)?;
    let Some(second) = digit(1) else {
        return Some((first, 1));
    };
    if first == 0 {
        return None; // a leading zero
    }
    let Some(third) = digit(2) else {
        return Some((first * 10 + second, 2));
    };
    let v = first * 100 + second * 10 + third;
    (v <= 255).then_some((v, 3))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) judged as its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parses a CIDR or a bare address (as a host route).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    match t.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!("bad CIDR {s:?}")),
    }
}

/// A list of networks.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    nets: Vec<IpNet>,
    /// The IPv4 ones as (network, mask), checked without `IpNet`.
    v4: Vec<(u32, u32)>,
}

impl Networks {
    pub fn parse<'a>(
        list: impl IntoIterator<Item = &'a String>,
        what: &str,
    ) -> Result<Networks, String> {
        let mut nets = Vec::new();
        for s in list {
            nets.push(parse_net(s).map_err(|e| format!("{what}: {e}"))?);
        }
        let v4 = nets
            .iter()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(_) => None,
            })
            .collect();
        Ok(Networks { nets, v4 })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            v6 => self.nets.iter().any(|n| n.contains(&v6)),
        }
    }
}

#[derive(Debug, Clone)]
struct AllowEntry {
    destination: IpNet,
    port: Option<u16>,
    source: Option<IpNet>,
    reason: String,
}

impl AllowEntry {
    /// Destination and port match (`dest` canonical).
    fn reaches(&self, dest: IpAddr, port: Option<u16>) -> bool {
        self.destination.contains(&dest) && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Known-good traffic.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

impl Allowlist {
    pub fn parse(list: &[AllowConfig]) -> Result<Allowlist, String> {
        let mut entries = Vec::new();
        for (i, a) in list.iter().enumerate() {
            let at = |e: String| format!("allowlist[{i}]: {e}");
            entries.push(AllowEntry {
                destination: parse_net(&a.destination).map_err(at)?,
                port: a.port,
                source: a.source.as_deref().map(parse_net).transpose().map_err(at)?,
                reason: a.reason.clone(),
            });
        }
        Ok(Allowlist { entries })
    }

    /// The first entry matching this connection (an entry with a port
    /// never matches an event without one); its reason is
    /// [`Allowlist::reason`].
    pub fn find(&self, src: Option<IpAddr>, dest: IpAddr, port: Option<u16>) -> Option<usize> {
        let dest = canonical(dest);
        let src = src.map(canonical);
        self.entries.iter().position(|e| {
            e.reaches(dest, port)
                && e.source
                    .is_none_or(|s| src.is_some_and(|ip| s.contains(&ip)))
        })
    }

    /// The reason of entry `i` ("" when there is none).
    pub fn reason(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| e.reason.as_str())
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry may match a connection to `dest` on `port`,
    /// whatever its source: when not, [`Allowlist::find`] needs no source.
    pub fn may_match(&self, dest: IpAddr, port: Option<u16>) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let dest = canonical(dest);
        self.entries.iter().any(|e| e.reaches(dest, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_INTERNAL_NETWORKS;

    fn internal() -> Networks {
        let v: Vec<String> = DEFAULT_INTERNAL_NETWORKS
            .iter()
            .map(|s| s.to_string())
            .collect();
        Networks::parse(&v, "internal_networks").unwrap()
    }

    #[test]
    fn default_internal_networks() {
        let n = internal();
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.20.5.5",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.9.9",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:172.20.1.1",
        ] {
            assert!(n.contains(parse_ip(ip).unwrap()), "{ip} should be internal");
        }
        for ip in [
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "8.8.8.8",
            "203.0.113.9",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "192.169.0.1",
        ] {
            assert!(
                !n.contains(parse_ip(ip).unwrap()),
                "{ip} should be external"
            );
        }
    }

    #[test]
    fn the_quick_ipv4_reader_agrees_with_std() {
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.02.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4/8",
            "1.2.3.a",
            "1000.1.1.1",
            "10.0.0.0",
            "0.1.2.3",
            "00.1.2.3",
            "::ffff:1.2.3.4",
            "",
            ".",
            "1",
        ]
        .map(str::to_string)
        .to_vec();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Three to five parts: numbers around 255, with and without
            // leading zeros, sometimes empty or with a stray character.
            let parts = 3 + (seed % 3) as usize;
            let part = |k: usize| {
                let r = (seed >> (8 + 9 * k)) & 0x1ff;
                match r % 16 {
                    0 => String::new(),
                    1 => format!("0{}", r % 10),
                    2 => "x".into(),
                    _ => (r % 300).to_string(),
                }
            };
            let s = (0..parts).map(part).collect::<Vec<_>>().join(".");
            cases.push(s);
        }
        let mut valid = 0;
        for c in &cases {
            let want = c.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
            assert_eq!(parse_dotted_quad(c.as_bytes()), want, "{c:?}");
            valid += want.is_some() as usize;
        }
        assert!(valid > 1000, "only {valid} valid addresses among the cases");
    }

    #[test]
    fn the_quick_ipv4_check_agrees_with_ipnet() {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.1.77/24",
            "203.0.113.9",
        ];
        let n = Networks::parse(&nets.map(str::to_string), "internal_networks").unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Addresses near the networks' edges as well as anywhere.
            let a = match seed % 4 {
                0 => (seed >> 32) as u32,
                1 => 0x0a00_0000 ^ (seed >> 40) as u32,
                2 => 0xac10_0000 ^ (seed >> 44) as u32,
                _ => 0xcb00_7109 ^ (seed >> 60) as u32,
            };
            let ip = IpAddr::V4(a.into());
            assert_eq!(
                n.contains(ip),
                n.nets.iter().any(|x| x.contains(&ip)),
                "{ip}"
            );
        }
    }

    #[test]
    fn non_addresses() {
        assert_eq!(parse_ip("ftp.example.com"), None);
        assert_eq!(parse_ip(""), None);
        assert_eq!(parse_ip("fe80::1%eth0"), None);
        assert_eq!(parse_ip(" 8.8.8.8 "), Some("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn bad_cidr_is_named() {
        let err = Networks::parse(&["10.0.0.0/33".to_string()], "internal_networks").unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn allowlist_matches_destination_port_and_source() {
        let a = Allowlist::parse(&[
            AllowConfig {
                destination: "198.51.100.0/24".into(),
                port: Some(21),
                source: None,
                reason: "partner ftp".into(),
            },
            AllowConfig {
                destination: "20.60.0.0/16".into(),
                port: None,
                source: Some("10.9.0.0/16".into()),
                reason: "azure files".into(),
            },
        ])
        .unwrap();
        let ip = |s: &str| parse_ip(s).unwrap();
        let find = |src, dest, port| a.find(src, dest, port).map(|i| a.reason(i));
        assert_eq!(
            find(Some(ip("10.0.0.1")), ip("198.51.100.7"), Some(21)),
            Some("partner ftp")
        );
        assert_eq!(
            find(Some(ip("10.0.0.1")), ip("198.51.100.7"), Some(445)),
            None
        );
        assert_eq!(
            find(Some(ip("10.9.1.1")), ip("20.60.1.1"), Some(445)),
            Some("azure files")
        );
        assert_eq!(find(Some(ip("10.8.1.1")), ip("20.60.1.1"), Some(445)), None);
        assert_eq!(find(None, ip("20.60.1.1"), Some(445)), None);
        assert_eq!(
            find(None, ip("::ffff:198.51.100.7"), Some(21)),
            Some("partner ftp")
        );
        // No port: only an entry without one can match.
        assert_eq!(find(None, ip("198.51.100.7"), None), None);
        assert_eq!(
            find(Some(ip("10.9.1.1")), ip("20.60.1.1"), None),
            Some("azure files")
        );
        assert!(a.may_match(ip("20.60.1.1"), None));
        assert!(a.may_match(ip("198.51.100.7"), Some(21)));
        assert!(!a.may_match(ip("198.51.100.7"), Some(22)));
        assert!(!a.may_match(ip("8.8.8.8"), Some(21)));
    }
}
