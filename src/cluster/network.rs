//! Where a pool's scheduler listens when the user named no interface and
//! no host (dask-jobqueue's default): on the local address that routes to
//! the nodes of the pool's partition, as Slurm lists them, so the workers
//! reach it without a flag; else on the host name's address. Which one,
//! and why, is logged.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};

use crate::scheduler::Bind;
use crate::slurm::{NodeAddress, Slurm};

/// The address a scheduler reaches `nodes` from, and how many of them:
/// the local end of the route to each node, the most common one.
pub(crate) fn choose(routes: &[(String, Option<IpAddr>)]) -> Option<(IpAddr, usize)> {
    let mut counts: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for ip in routes.iter().filter_map(|(_, ip)| *ip) {
        *counts.entry(ip).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n)
}

/// The local route to one node, its address resolved if it is a name.
fn route(node: &NodeAddress) -> Option<IpAddr> {
    let ip = node.address.parse::<IpAddr>().ok().or_else(|| {
        (node.address.as_str(), 0)
            .to_socket_addrs()
            .ok()?
            .next()
            .map(|a| a.ip())
    })?;
    crate::net::route_to(ip)
}

/// The local address that routes to most nodes of `partition`, with why;
/// or why there is none.
pub(crate) async fn routed(
    slurm: &dyn Slurm,
    partition: Option<&str>,
) -> Result<(IpAddr, String), String> {
    let which = partition.unwrap_or("the default partition");
    match slurm.node_addresses(partition).await {
        Ok(nodes) if !nodes.is_empty() => {
            let routes: Vec<(String, Option<IpAddr>)> =
                nodes.iter().map(|n| (n.name.clone(), route(n))).collect();
            match choose(&routes) {
                Some((ip, n)) => Ok((
                    ip,
                    format!(
                        "the local address that routes to {n} of the {} nodes of {which}",
                        nodes.len()
                    ),
                )),
                None => Err(format!("no route to any node of {which}")),
            }
        }
        Ok(_) => Err(format!("Slurm lists no nodes for {which}")),
        Err(e) => Err(format!("cannot ask Slurm for the nodes of {which}: {e}")),
    }
}

/// `bind`, with `Bind::Auto` resolved to an address.
pub(crate) async fn resolve(bind: &Bind, slurm: &dyn Slurm, partition: Option<&str>) -> Bind {
    if *bind != Bind::Auto {
        return bind.clone();
    }
    match routed(slurm, partition).await {
        Ok((ip, why)) => {
            tracing::info!(address = %ip, "scheduler address: {why}");
            return Bind::Host(ip);
        }
        Err(why) => tracing::warn!("{why}; using the host name's address"),
    }
    match crate::net::host_address() {
        Some(ip) => {
            tracing::info!(address = %ip, "scheduler address: the host name's address");
            Bind::Host(ip)
        }
        None => Bind::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_most_nodes_take_wins_and_unroutable_nodes_do_not_count() {
        let a: IpAddr = "10.77.0.1".parse().unwrap();
        let b: IpAddr = "192.168.1.5".parse().unwrap();
        let routes = vec![
            ("node1".to_string(), Some(a)),
            ("node2".to_string(), Some(a)),
            ("node3".to_string(), Some(b)),
            ("node4".to_string(), None),
        ];
        assert_eq!(choose(&routes), Some((a, 2)));
        assert_eq!(choose(&[("n".to_string(), None)]), None);
    }
}
