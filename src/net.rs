//! Network addresses: the IPv4 address of a named interface such as
//! `ib0`, the local address that routes to a peer, and the host name's.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// A named interface that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// No interface has that name.
    #[error("no network interface named `{name}`; interfaces here: {}", .available.join(", "))]
    NoSuchInterface {
        /// The name asked for.
        name: String,
        /// Every interface that exists, with its addresses.
        available: Vec<String>,
    },
    /// The interface exists but has no IPv4 address.
    #[error("network interface `{name}` has no IPv4 address; interfaces here: {}", .available.join(", "))]
    NoIpv4 {
        /// The name asked for.
        name: String,
        /// Every interface that exists, with its addresses.
        available: Vec<String>,
    },
    /// The interfaces could not be listed.
    #[error("cannot list network interfaces: {0}")]
    List(String),
}

/// The first IPv4 address of the interface `name`.
pub fn interface_ipv4(name: &str) -> Result<Ipv4Addr, NetError> {
    let interfaces = if_addrs::get_if_addrs().map_err(|e| NetError::List(e.to_string()))?;
    let v4 = interfaces.iter().find_map(|i| match i.ip() {
        std::net::IpAddr::V4(a) if i.name == name => Some(a),
        _ => None,
    });
    if let Some(addr) = v4 {
        return Ok(addr);
    }
    let mut available: Vec<String> = Vec::new();
    for i in &interfaces {
        let entry = format!("{} ({})", i.name, i.ip());
        if !available.contains(&entry) {
            available.push(entry);
        }
    }
    let name = name.to_string();
    if interfaces.iter().any(|i| i.name == name) {
        Err(NetError::NoIpv4 { name, available })
    } else {
        Err(NetError::NoSuchInterface { name, available })
    }
}

/// Every interface's name and addresses, as the kernel lists them.
pub fn interfaces() -> Vec<(String, IpAddr)> {
    if_addrs::get_if_addrs()
        .map(|all| all.into_iter().map(|i| (i.name.clone(), i.ip())).collect())
        .unwrap_or_default()
}

/// The interface that holds `ip`, if one does.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    interfaces()
        .into_iter()
        .find(|(_, a)| *a == ip)
        .map(|(name, _)| name)
}

/// The local address this host would use to reach `peer` (a connected UDP
/// socket sends nothing, but the kernel picks the route and its source).
pub fn route_to(peer: IpAddr) -> Option<IpAddr> {
    let any = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect((peer, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The first address the host's own name resolves to that is not loopback.
pub fn host_address() -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let name = sysinfo::System::host_name()?;
    (name.as_str(), 0)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(|ip| !ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_address_and_unknown_names_list_the_others() {
        assert_eq!(interface_ipv4("lo").unwrap(), Ipv4Addr::LOCALHOST);
        let err = interface_ipv4("nonexistent0").unwrap_err().to_string();
        assert!(
            err.contains("no network interface named `nonexistent0`"),
            "{err}"
        );
        assert!(err.contains("lo (127.0.0.1)"), "{err}");
    }

    #[test]
    fn the_route_to_loopback_starts_on_loopback() {
        assert_eq!(
            route_to(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }
}
