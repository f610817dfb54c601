//! Keeps the DNS server's snapshot in step with the node's replica: the
//! shared informers of Services and Endpoints feed two caches, and after each
//! batch of changes (everything already queued is taken at once) a fresh
//! [`Names`] is built and swapped in.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::names::Names;
use super::server::SharedNames;
use crate::objects::kinds::{ENDPOINTS, SERVICE};
use crate::objects::network::ServiceNetwork;
use crate::objects::typed::Object;
use crate::registry::informer::{apply_change, Change};
use crate::registry::Registry;

/// One informer change, of either kind.
enum Input {
    Services(Change),
    Endpoints(Change),
}

/// The caches the snapshot is built from.
#[derive(Default)]
struct Caches {
    services: HashMap<String, Arc<Object>>,
    endpoints: HashMap<String, Arc<Object>>,
    services_synced: bool,
    endpoints_synced: bool,
}

impl Caches {
    fn apply(&mut self, input: Input) {
        match input {
            Input::Services(c) => {
                self.services_synced |= matches!(c, Change::Reset(_));
                apply_change(&mut self.services, c);
            }
            Input::Endpoints(c) => {
                self.endpoints_synced |= matches!(c, Change::Reset(_));
                apply_change(&mut self.endpoints, c);
            }
        }
    }

    fn names(&self, network: &ServiceNetwork, serial: u32) -> Names {
        Names::build(
            network.clone(),
            serial,
            self.services.values().filter_map(|o| o.service()),
            self.endpoints.values().filter_map(|o| o.endpoints()),
        )
    }
}

/// Follow the registry's Services and Endpoints into `names` until `stop`.
pub async fn follow(registry: Registry, network: ServiceNetwork, names: SharedNames, mut stop: watch::Receiver<bool>) {
    let services = registry.watch(&SERVICE).map(Input::Services);
    let endpoints = registry.watch(&ENDPOINTS).map(Input::Endpoints);
    let mut inputs = futures::stream::select(services, endpoints);
    let mut caches = Caches::default();
    let mut serial = 0u32;
    loop {
        let first = tokio::select! {
            i = inputs.next() => i,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(first) = first else { return };
        caches.apply(first);
        // Everything already queued joins this batch.
        while let Some(Some(more)) = inputs.next().now_or_never() {
            caches.apply(more);
        }
        if !(caches.services_synced && caches.endpoints_synced) {
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        serial = now.max(serial.wrapping_add(1));
        let began = std::time::Instant::now();
        let fresh = caches.names(&network, serial);
        let count = fresh.len();
        names.set(fresh);
        tracing::debug!(services = count, took = ?began.elapsed(), "dns: names updated");
    }
}
