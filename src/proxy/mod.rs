//! The proxy on every node (kube-proxy's job, in its nftables mode): Services'
//! ClusterIPs and NodePorts lead to their ready endpoints through one
//! nftables table per node, kept in step with the node's informers.
//!
//! The decisions are pure ([`rules`]: objects → ruleset; [`diff`]: two
//! rulesets → one transaction; [`plan`]: which Services changed → the
//! round's transaction); this driver only follows Services and Endpoints,
//! notes which Services they touch, coalesces a burst of changes into one
//! round, and hands each round's transaction to [`nft`]. A round that fails is logged and followed by a full
//! rebuild (the kernel's state is then unknown). The table outlives the
//! process on purpose: traffic keeps flowing while a node restarts, and the
//! restarted node rebuilds it from the store; `clusterd reset` deletes it.

pub mod diff;
pub mod nft;
pub mod plan;
pub mod rules;

#[cfg(test)]
mod netns_tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use crate::objects::kinds::{ENDPOINTS, SERVICE};
use crate::objects::network::{ServiceNetwork, DEFAULT_CLUSTER_CIDR};
use crate::objects::typed::Object;
use crate::registry::informer::{apply_change, Change};
use crate::registry::Registry;
use nft::{Nft, NftError};
use plan::Applied;
use rules::NodeView;

/// How long the feed must be quiet before a round runs…
const QUIET: Duration = Duration::from_millis(1);
/// …but a burst waits no longer than this.
const MAX_BURST: Duration = Duration::from_millis(10);
/// The first retry after a failed round; doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often to look for the cluster settings on a replica that has not got them yet.
const SETTINGS_POLL: Duration = Duration::from_millis(200);

/// The proxy's settings for one node.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The node's name (endpoints' `nodeName`).
    pub node: String,
    /// Its nftables table ([`table_name`]).
    pub table: String,
    /// The node-local DNS server's port, to which the cluster DNS address is
    /// redirected.
    pub dns_port: Option<u16>,
}

/// The proxy table of the node whose host key (name and cluster tag) is `host_key`.
pub fn table_name(host_key: &str) -> String {
    format!("clusterd-proxy-{host_key}")
}

/// What the proxy knows: the objects, and what the kernel has.
struct Proxy {
    /// Who this node is; `None` until the cluster settings are on its replica.
    view: Option<NodeView>,
    nft: Nft,
    services: HashMap<String, Arc<Object>>,
    endpoints: HashMap<String, Arc<Object>>,
    /// Whether each informer has delivered its first list.
    services_synced: bool,
    endpoints_synced: bool,
    /// The Services (store keys) whose object or Endpoints changed since the
    /// last round; after a re-list, all may have.
    dirty: HashSet<String>,
    all_dirty: bool,
    /// The rules last applied; `None` when the kernel's table is unknown.
    applied: Option<Applied>,
}

impl Proxy {
    fn take(&mut self, input: Input) {
        let (change, cache) = match input {
            Input::Services(c) => {
                self.services_synced |= matches!(c, Change::Reset(_));
                (c, &mut self.services)
            }
            Input::Endpoints(c) => {
                self.endpoints_synced |= matches!(c, Change::Reset(_));
                (c, &mut self.endpoints)
            }
        };
        match &change {
            Change::Reset(_) => self.all_dirty = true,
            Change::Put(o) | Change::Delete(o) => self.dirty.extend(plan::service_key(o)),
        }
        apply_change(cache, change);
    }

    /// One round: the transaction from the applied rules to the wanted ones.
    async fn sync(&mut self, view: &NodeView) -> Result<(), NftError> {
        let started = Instant::now();
        let dirty = (!self.all_dirty).then_some(&self.dirty);
        let round = plan::plan(view, self.applied.take(), &self.services, &self.endpoints, dirty);
        self.dirty.clear();
        self.all_dirty = false;
        let decided = started.elapsed();
        if round.transaction.is_empty() {
            self.applied = Some(round.applied);
            return Ok(());
        }
        self.nft.apply(&round.transaction).await?;
        tracing::debug!(
            table = %view.table,
            rebuilt = round.rebuilt,
            services = round.changed,
            lines = round.transaction.lines().count(),
            bytes = round.transaction.len(),
            decide_us = decided.as_micros() as u64,
            apply_us = (started.elapsed() - decided).as_micros() as u64,
            "proxy: rules updated"
        );
        self.applied = Some(round.applied);
        Ok(())
    }
}

/// Which informer a change came from.
enum Input {
    Services(Change),
    Endpoints(Change),
}

/// Who the node is, from its settings and the cluster's (`init`'s); `None`
/// while the cluster settings have not reached the node's replica.
fn node_view(cfg: &ProxyConfig, settings: &Value) -> Option<NodeView> {
    let configured = settings.get("clusterCIDR").and_then(Value::as_str)?;
    let cluster_cidr = configured.parse().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "proxy: clusterCIDR unusable, using {DEFAULT_CLUSTER_CIDR}");
        DEFAULT_CLUSTER_CIDR.parse().expect("the default parses")
    });
    let dns_ip = ServiceNetwork::from_settings(settings).dns_ip();
    Some(NodeView {
        name: cfg.node.clone(),
        table: cfg.table.clone(),
        cluster_cidr,
        dns: cfg.dns_port.map(|port| (dns_ip, port)),
    })
}

/// Keep the node's proxy table in step with Services and Endpoints until
/// `stop` turns true. The table is rebuilt at the first round (a restarted
/// node's table may be stale) and left in place at the end.
pub async fn run(cfg: ProxyConfig, registry: Registry, mut stop: watch::Receiver<bool>) {
    let mut proxy = Proxy {
        view: None,
        nft: Nft::host(),
        services: HashMap::new(),
        endpoints: HashMap::new(),
        services_synced: false,
        endpoints_synced: false,
        dirty: HashSet::new(),
        all_dirty: true,
        applied: None,
    };
    let mut inputs = futures::stream::select(
        registry.watch(&SERVICE).map(Input::Services),
        registry.watch(&ENDPOINTS).map(Input::Endpoints),
    );
    let mut retry: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::ZERO;
    tracing::info!(table = %cfg.table, "proxy: started");
    loop {
        let retry_at = retry;
        tokio::select! {
            input = inputs.next() => match input {
                Some(input) => proxy.take(input),
                None => return,
            },
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {}
            _ = stop.wait_for(|s| *s) => {
                tracing::info!(table = %cfg.table, "proxy: stopped (rules left in place)");
                return;
            }
        }
        // The rest of the burst: until the feed is quiet, for a short while at most.
        let deadline = tokio::time::Instant::now() + MAX_BURST;
        while let Ok(Ok(Some(input))) =
            tokio::time::timeout_at(deadline, tokio::time::timeout(QUIET, inputs.next())).await
        {
            proxy.take(input);
        }
        if !(proxy.services_synced && proxy.endpoints_synced) {
            continue;
        }
        let Some(view) = proxy.view.clone().or_else(|| node_view(&cfg, &registry.settings())) else {
            retry = Some(tokio::time::Instant::now() + SETTINGS_POLL);
            continue;
        };
        proxy.view = Some(view.clone());
        match proxy.sync(&view).await {
            Ok(()) => {
                retry = None;
                backoff = Duration::ZERO;
            }
            Err(e) => {
                backoff = if backoff.is_zero() { FIRST_RETRY } else { (backoff * 2).min(MAX_RETRY) };
                tracing::warn!(error = %e, retry_in = ?backoff, "proxy: applying the rules failed; rebuilding next round");
                retry = Some(tokio::time::Instant::now() + backoff);
            }
        }
    }
}

/// Delete the proxy table `table` from this host (`clusterd reset`); a
/// missing table is not an error.
pub async fn remove_table(table: &str) -> Result<(), NftError> {
    Nft::host().apply(&diff::delete_table(table)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_node_view_waits_for_the_cluster_settings() {
        let cfg = ProxyConfig { node: "n1".into(), table: table_name("n1-abc"), dns_port: Some(5353) };
        assert_eq!(node_view(&cfg, &json!({})), None, "a joining node's replica without init's settings");
        let view = node_view(&cfg, &json!({"clusterCIDR": "10.7.0.0/16", "serviceCIDR": "10.100.0.0/16"})).unwrap();
        assert_eq!(view.table, "clusterd-proxy-n1-abc");
        assert_eq!(view.cluster_cidr.to_string(), "10.7.0.0/16");
        assert_eq!(view.dns, Some(("10.100.0.10".parse().unwrap(), 5353)));
    }
}
