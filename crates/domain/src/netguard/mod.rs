//! Which addresses Switchyard sends to. Outbound requests go to URLs that users type, so
//! without this a destination could point at the metadata service or the database. The
//! outbound client resolves names itself and asks `allowed` of every address, so a DNS
//! answer cannot smuggle a private address past a check done on the name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Tests and self-hosted setups: allow private addresses and plain `http://`.
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not a public address")]
    PrivateAddress(IpAddr),
    #[error("the URL must start with {0}")]
    Scheme(&'static str),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    Credentials,
}

impl Policy {
    pub fn allowed(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(Refusal::PrivateAddress(ip))
        }
    }

    /// The checks that need no DNS: scheme, host, no credentials, and IP literals.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ if self.allow_private => return Err(Refusal::Scheme("http:// or https://")),
            _ => return Err(Refusal::Scheme("https://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(url::Host::Ipv4(ip)) => self.allowed(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.allowed(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !self.allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                    Err(Refusal::PrivateAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Globally routable unicast: not loopback, private, link-local (which holds the cloud
/// metadata address), shared, documentation, benchmarking, multicast or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match seg {
        // IPv4-compatible (deprecated) and 6to4 carry an IPv4 address: judge that one.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => is_public_v4(embedded_v4(hi, lo)),
        [0x2002, hi, lo, ..] => is_public_v4(embedded_v4(hi, lo)),
        _ => {
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254 metadata
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x2001 && seg[1] == 0) // Teredo: tunnels to anywhere
                || (seg[0] == 0x0064 && seg[1] == 0xff9b)) // NAT64 (well-known and local-use)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let table = [
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("198.18.0.1", false),
            ("192.0.0.8", false),
            ("::1", false),
            ("::", false),
            ("fd00:ec2::254", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a00:1", false),
            ("64:ff9b:1::a00:1", false),
            ("2002:7f00:1::", false),
            ("2002:808:808::", true),
            ("2001:0:4136:e378::1", false),
            ("::127.0.0.1", false),
            ("fec0::1", false),
            ("192.88.99.1", false),
            ("2606:4700:4700::1111", true),
        ];
        for (ip, public) in table {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let strict = Policy::default();
        let check = |u: &str| strict.check_url(&Url::parse(u).unwrap());
        assert_eq!(check("https://example.com/hook"), Ok(()));
        assert_eq!(
            check("http://example.com/hook"),
            Err(Refusal::Scheme("https://"))
        );
        assert!(matches!(
            check("https://127.0.0.1/x"),
            Err(Refusal::PrivateAddress(_))
        ));
        assert!(matches!(
            check("https://[::1]/x"),
            Err(Refusal::PrivateAddress(_))
        ));
        assert!(matches!(
            check("https://localhost/x"),
            Err(Refusal::PrivateAddress(_))
        ));
        assert_eq!(check("https://u:p@example.com/"), Err(Refusal::Credentials));
        assert_eq!(
            check("ftp://example.com/"),
            Err(Refusal::Scheme("https://"))
        );
    }

    #[test]
    fn allow_private_opens_loopback_and_plain_http() {
        let open = Policy {
            allow_private: true,
        };
        assert_eq!(
            open.check_url(&Url::parse("http://127.0.0.1:9/x").unwrap()),
            Ok(())
        );
        assert_eq!(open.allowed("10.0.0.1".parse().unwrap()), Ok(()));
    }
}
