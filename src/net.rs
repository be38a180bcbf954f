//! Network interfaces: the IPv4 address of a named interface such as `ib0`.

use std::net::Ipv4Addr;

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
}
