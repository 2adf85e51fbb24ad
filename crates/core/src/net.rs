//! Which network addresses a job may call: the pure half of the SSRF guard.
//!
//! The executor asks [`TargetPolicy::permits`] about every address it is about to dial (after DNS,
//! on every redirect hop); job validation asks it about literal addresses in URLs.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;

/// Networks that are not the public internet: loopback, private, link-local, shared, reserved,
/// documentation, multicast and the translation prefixes that could reach them.
static NON_PUBLIC_NETS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::/96",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2001::/32",
        "2002::/16",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|net| net.parse().ok())
    .collect()
});

/// Whether `address` is on the public internet. IPv4-mapped IPv6 addresses are judged as the IPv4
/// address they carry.
pub fn is_public(address: IpAddr) -> bool {
    let address = canonical(address);
    !NON_PUBLIC_NETS.iter().any(|net| net.contains(&address))
}

/// The address an IPv4-mapped IPv6 address stands for; any other address unchanged.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The operator's rule for outbound targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Every address is allowed (`--allow-private-targets`): for self-hosting and tests.
    pub allow_private: bool,
    /// Non-public networks that are allowed all the same (`--allowed-target-nets`).
    pub allowed_nets: Vec<IpNet>,
}

impl TargetPolicy {
    /// Whether a request may be sent to `address`.
    pub fn permits(&self, address: IpAddr) -> bool {
        if self.allow_private || is_public(address) {
            return true;
        }
        let address = canonical(address);
        self.allowed_nets.iter().any(|net| net.contains(&address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address parses")
    }

    #[test]
    fn every_listed_range_is_refused_at_both_edges() {
        for net in NON_PUBLIC_NETS.iter() {
            assert!(!is_public(net.network()), "{net} first");
            assert!(!is_public(net.broadcast()), "{net} last");
        }
        assert_eq!(NON_PUBLIC_NETS.len(), 27, "every listed net parses");
    }

    #[test]
    fn neighbours_of_blocked_ranges_are_public() {
        for address in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(is_public(ip(address)), "{address}");
        }
    }

    #[test]
    fn mapped_loopback_is_loopback() {
        assert!(!is_public(ip("::ffff:127.0.0.1")));
        assert!(!is_public(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn the_policy_opens_what_the_operator_allows() {
        let closed = TargetPolicy::default();
        assert!(!closed.permits(ip("127.0.0.1")));
        assert!(closed.permits(ip("8.8.8.8")));
        let open = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        assert!(open.permits(ip("127.0.0.1")));
        let listed = TargetPolicy {
            allow_private: false,
            allowed_nets: vec!["10.1.0.0/16".parse().expect("net")],
        };
        assert!(listed.permits(ip("10.1.2.3")));
        assert!(!listed.permits(ip("10.2.0.1")));
        assert!(!listed.permits(ip("127.0.0.1")));
    }
}
