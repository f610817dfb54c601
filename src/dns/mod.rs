//! Cluster DNS, served by every node from its own replica (no DNS pods):
//! Services and their Endpoints answer under the cluster domain, everything
//! else is forwarded to the host's resolvers. Each node listens on a free port
//! (UDP and TCP); the node's proxy sends the DNS Service's address (`dns_ip`
//! port 53) there, so a pod's `nameserver <dns_ip>` reaches its own node.
//!
//! The answers are pure ([`records`] over a [`names::Names`] snapshot); the
//! server ([`server`]) only reads the current snapshot, which [`feed`] keeps in
//! step with the informers; [`forward`] asks the host's resolvers.

pub mod feed;
pub mod forward;
pub mod names;
pub mod records;
pub mod server;
#[cfg(test)]
mod server_tests;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::registry::Registry;
use forward::Upstream;
use server::{Listening, SharedNames};

/// How a node's DNS server is set up.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The address to listen on (all of the node's by default).
    pub listen: IpAddr,
    /// The host's resolver settings: where forwarded names go.
    pub resolv_conf: PathBuf,
    /// How long one upstream server has to answer.
    pub upstream_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            resolv_conf: PathBuf::from(crate::util::resolv::HOST_RESOLV_CONF),
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

impl DnsConfig {
    /// The upstream servers of the configured resolv.conf.
    pub fn upstream(&self) -> Upstream {
        Upstream {
            servers: crate::util::resolv::ResolvConf::read(&self.resolv_conf).servers(),
            timeout: self.upstream_timeout,
        }
    }
}

/// Why the DNS server did not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No port could be bound for both UDP and TCP.
    #[error("dns: binding a port for UDP and TCP: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running DNS server.
pub struct DnsServer {
    /// The port it answers on (UDP and TCP).
    pub port: u16,
    /// The snapshot it answers from.
    pub names: SharedNames,
    listening: Listening,
}

impl DnsServer {
    /// Listen on a free port of `ip` and answer from `names`, forwarding to
    /// `upstream` (no informers: the caller sets the snapshot). Call inside a
    /// tokio runtime.
    pub fn start(ip: IpAddr, names: SharedNames, upstream: Upstream) -> Result<DnsServer, DnsError> {
        let listening = server::listen(ip, names.clone(), upstream)?;
        Ok(DnsServer { port: listening.port, names, listening })
    }

    /// Stop answering.
    pub async fn shutdown(self) {
        self.listening.shutdown().await;
    }
}

/// Start the node's DNS server: bound at once (the port is returned), its
/// names following the registry's Services and Endpoints until `stop` turns
/// true, when it also stops answering. Call inside the node's tokio runtime.
pub fn serve(cfg: DnsConfig, registry: Registry, stop: watch::Receiver<bool>) -> Result<u16, DnsError> {
    let network = registry.service_network();
    let names = SharedNames::new(names::Names::empty(network.clone()));
    let dns = DnsServer::start(cfg.listen, names.clone(), cfg.upstream())?;
    let port = dns.port;
    tracing::info!(port, domain = %network.domain, "dns: serving the cluster's names");
    let mut until = stop.clone();
    tokio::spawn(async move {
        feed::follow(registry, network, names, stop).await;
        let _ = until.wait_for(|s| *s).await;
        dns.shutdown().await;
    });
    Ok(port)
}
