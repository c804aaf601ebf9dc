//! Which address a request comes from when Net API sits behind proxies: `X-Forwarded-For` is
//! believed only from configured proxies, read from the right, so a client cannot choose the
//! address its failed attempts and rate limits are counted under.

use axum::http::HeaderMap;
use std::net::IpAddr;

/// A network in CIDR notation (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let width = if matches!(address, IpAddr::V4(_)) {
            32
        } else {
            128
        };
        let prefix = prefix.unwrap_or(width);
        (prefix <= width).then_some(Self { address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Network::parse(s).ok_or_else(|| format!("'{s}' is not an address or network")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the first
    /// untrusted hop of `X-Forwarded-For` counted from the right. A hop that is not an
    /// address (after stripping a port) ends the walk: what lies left of it was written by
    /// someone no trusted proxy vouches for, so the last trusted hop is the source.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let values: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        let mut client = peer;
        for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let Some(hop) = parse_hop(hop) else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// One hop of `X-Forwarded-For`: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Some(rest) = hop.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return port_ok
            .then(|| address.parse::<std::net::Ipv6Addr>().ok())
            .flatten()
            .map(IpAddr::V6);
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|s| IpAddr::V4(*s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            xff.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap_or_default();
        // A direct client cannot claim another address.
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), &headers("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Through the proxy: the rightmost untrusted hop, whatever the client prepended.
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), &headers("1.2.3.4, 198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), &headers("198.51.100.7, 10.9.9.9")),
            ip("198.51.100.7")
        );
        assert_eq!(proxies.client_ip(ip("::1"), &HeaderMap::new()), ip("::1"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }

    #[test]
    fn ports_are_stripped_from_hops() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap_or_default();
        let peer = ip("10.1.2.3");
        for (xff, client) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("1.2.3.4, 198.51.100.7:80, 10.0.0.1:443", "198.51.100.7"),
        ] {
            assert_eq!(proxies.client_ip(peer, &headers(xff)), ip(client), "{xff}");
        }
    }

    #[test]
    fn an_unparseable_hop_ends_the_walk() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap_or_default();
        let peer = ip("10.1.2.3");
        // What the client wrote left of a hop that is no address is never the source.
        for (xff, client) in [
            ("1.2.3.4, unknown", "10.1.2.3"),
            ("1.2.3.4, unknown, 10.0.0.9", "10.0.0.9"),
            ("1.2.3.4, _hidden", "10.1.2.3"),
            ("1.2.3.4, 198.51.100.7:port", "10.1.2.3"),
            ("1.2.3.4, [2001:db8::7]x", "10.1.2.3"),
            ("1.2.3.4, ", "10.1.2.3"),
        ] {
            assert_eq!(proxies.client_ip(peer, &headers(xff)), ip(client), "{xff}");
        }
        // Several header lines read as one list, the last line nearest.
        let mut two = HeaderMap::new();
        two.append(
            "x-forwarded-for",
            "1.2.3.4".parse().unwrap_or_else(|_| unreachable!()),
        );
        two.append(
            "x-forwarded-for",
            "198.51.100.7".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(proxies.client_ip(peer, &two), ip("198.51.100.7"));
    }
}
