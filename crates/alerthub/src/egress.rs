//! Egress allowlist for outbound notifications.
//!
//! Public addresses are always allowed. Loopback, private (RFC 1918, unique
//! local IPv6), link-local (169.254.0.0/16, fe80::/10, where cloud metadata
//! services live), carrier-grade NAT, unspecified and multicast addresses
//! are refused unless a CIDR of the `allow` list contains them.
//!
//! The notifier resolves the host itself, checks every address, and connects
//! to the checked address (so a DNS answer that changes between check and
//! connect cannot bypass the check). Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A CIDR block (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid CIDR {s:?}: bad address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid CIDR {s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why an address is restricted, or `None` for a public address.
pub fn restricted_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (CGNAT)")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("multicast/reserved")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast/reserved")
    } else {
        None
    }
}

/// The allowlist: restricted ranges that are nevertheless allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow: Vec<Cidr>,
}

impl EgressPolicy {
    /// Parses a list of CIDRs (config errors name the index).
    pub fn from_list(list: &[String]) -> Result<Self, (usize, String)> {
        let allow = list
            .iter()
            .enumerate()
            .map(|(i, s)| Cidr::parse(s).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy { allow })
    }

    /// `Ok` when a connection to `ip` is allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        match restricted_kind(ip) {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|c| c.contains(ip)) => Ok(()),
            Some(kind) => Err(format!(
                "egress to {ip} ({kind} address) is not allowed; add it to alertmanager.egress.allow to permit it"
            )),
        }
    }

    /// Resolves `host:port` and returns the first address allowed. Refuses
    /// the host when any of its addresses is refused (an attacker-controlled
    /// name could otherwise mix a public and an internal answer).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let host_trim = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host_trim.parse::<IpAddr>() {
            self.check(ip)?;
            return Ok(SocketAddr::new(ip, port));
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_trim, port))
            .await
            .map_err(|e| format!("resolving {host_trim}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("resolving {host_trim}: no addresses"));
        }
        for a in &addrs {
            self.check(a.ip())?;
        }
        Ok(addrs[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn restricted_ranges() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(restricted_kind(ip(s)).is_some(), "{s}");
        }
        for s in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(restricted_kind(ip(s)).is_none(), "{s}");
        }
    }

    #[test]
    fn allowlist_opens_only_listed_ranges() {
        let p = EgressPolicy::from_list(&["127.0.0.0/8".into(), "fd00::/8".into()]).unwrap();
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check(ip("fd12::1")).is_ok());
        assert!(p.check(ip("169.254.169.254")).is_err());
        assert!(p.check(ip("10.0.0.1")).is_err());
        assert!(p.check(ip("8.8.8.8")).is_ok());
        let none = EgressPolicy::default();
        let e = none.check(ip("169.254.169.254")).unwrap_err();
        assert!(e.contains("link-local"), "{e}");
        assert!(EgressPolicy::from_list(&["10.0.0.0/33".into()]).is_err());
        assert!(EgressPolicy::from_list(&["nope".into()]).is_err());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
    }

    #[tokio::test]
    async fn resolve_checks_literal_and_names() {
        let p = EgressPolicy::default();
        assert!(p.resolve("127.0.0.1", 80).await.is_err());
        assert!(p.resolve("[::1]", 80).await.is_err());
        assert!(p.resolve("localhost", 80).await.is_err());
        let open = EgressPolicy::from_list(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        assert_eq!(
            open.resolve("127.0.0.1", 8080).await.unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
    }
}
