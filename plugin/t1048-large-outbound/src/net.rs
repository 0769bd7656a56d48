//! Address lists: the internal networks and the excluded destinations,
//! each a list of CIDR networks or bare addresses, matched exactly.

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of networks. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
/// matched as the IPv4 address it carries ([`canonical`]).
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses `entries` (CIDR, or a bare address as a one-address network);
    /// `what` names the configuration key in the error.
    pub fn parse<'a>(
        what: &str,
        entries: impl IntoIterator<Item = &'a String>,
    ) -> Result<Networks, String> {
        let mut nets = Vec::new();
        for e in entries {
            let t = e.trim();
            let net = match t.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match t.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => {
                        return Err(format!(
                            "{what}: {e:?} is neither a CIDR network nor an IP address"
                        ));
                    }
                },
            };
            nets.push(net);
        }
        Ok(Networks(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Adds `other`'s networks to these.
    pub fn extend(&mut self, other: Networks) {
        self.0.extend(other.0);
    }
}

/// `ip` with an IPv4-mapped IPv6 address taken as its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Result<Networks, String> {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Networks::parse("internal_networks", &owned)
    }

    #[test]
    fn cidr_and_bare_addresses_match_exactly() {
        let n = nets(&["172.16.0.0/12", "203.0.113.9", "fc00::/7"]).unwrap();
        let ip = |s: &str| canonical(s.parse().unwrap());
        assert!(n.contains(ip("172.31.255.255")));
        assert!(!n.contains(ip("172.32.0.0")));
        assert!(n.contains(ip("203.0.113.9")));
        assert!(!n.contains(ip("203.0.113.10")));
        assert!(n.contains(ip("fd00::1")));
        assert!(n.contains(ip("::ffff:172.20.1.1")));
    }

    #[test]
    fn an_entry_that_is_no_network_is_refused_by_name() {
        let e = nets(&["10.0.0.0/8", "intranet"]).unwrap_err();
        assert!(
            e.contains("internal_networks") && e.contains("intranet"),
            "{e}"
        );
    }
}
