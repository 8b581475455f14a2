//! Who sent a request: the TCP peer, or, behind a reverse proxy the operator named, the
//! address that proxy reports.
//!
//! `X-Forwarded-For` is only a claim: any client can send one. It is read only when the
//! TCP peer is a configured trusted proxy (`--trusted-proxy` / `HUMANPROOF_TRUSTED_PROXIES`),
//! and then from the right, skipping further trusted hops, so the first address that no
//! trusted proxy vouches for is the client. Without that setting the header is ignored.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No proxy is trusted: the TCP peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request that arrived from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // A hop that does not parse ends the walk: the trusted proxy that appended it
            // is the last address anybody vouches for.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses or CIDR ranges, e.g. `10.0.0.0/8, 127.0.0.1`.
    fn from_str(list: &str) -> Result<Self, String> {
        let ranges = list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("not an IP address or CIDR range: {item:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(ranges))
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(canonical)
}

/// An IPv4 client on a dual-stack socket arrives as `::ffff:a.b.c.d`; it is the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The client's IP, for per-client limits. Needs the connect info that
/// [`crate::server::serve`] provides; a router served without it answers 500, loudly,
/// rather than counting every client as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    TrustedProxies: FromRef<S>,
{
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        let proxies = TrustedProxies::from_ref(state);
        Ok(Self(proxies.client_ip(peer.ip(), &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in forwarded {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let forged = headers(&["198.51.100.1"]);
        assert_eq!(
            TrustedProxies::none().client_ip(ip("203.0.113.5"), &forged),
            ip("203.0.113.5")
        );
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            proxies.client_ip(ip("203.0.113.5"), &forged),
            ip("203.0.113.5")
        );
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), &forged),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        // The client forged the first entry; our two proxies appended the rest.
        let chain = headers(&["192.0.2.66, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        // Only trusted hops: the leftmost is as far as anyone vouches.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers(&["10.0.0.9"])),
            ip("10.0.0.9")
        );
        // Garbage ends the walk at the proxy that passed it on.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers(&["junk, 10.0.0.3"])),
            ip("10.0.0.3")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn lists_parse_addresses_and_ranges() {
        assert!("".parse::<TrustedProxies>().unwrap().0.is_empty());
        assert_eq!(
            "127.0.0.1, ::1/128, 10.0.0.0/8"
                .parse::<TrustedProxies>()
                .unwrap()
                .0
                .len(),
            3
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
    }
}
