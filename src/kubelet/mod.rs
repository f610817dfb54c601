//! The kubelet: registers its Node, renews its Lease, and once the control plane
//! has given the node a pod CIDR, runs the node's pods through the runtime — one
//! [`worker`] per pod, fed by an informer over the pods bound to this node.
//! Containers keep running across a restart of the node process; the workers
//! find them again, and sandboxes of pods that are gone are removed.
//!
//! A worker's decisions are pure ([`plan`]); the [`executor`] carries them out
//! over the [`runtime::PodRuntime`] trait and the [`control_plane::ControlPlane`]
//! trait, so the whole pass is tested over in-memory fakes without root.

pub mod backoff;
pub mod control_plane;
pub mod executor;
#[cfg(test)]
mod fake;
pub mod host_usage;
pub mod modify;
pub mod node;
pub mod plan;
pub mod pod_dns;
pub mod probe;
pub mod routes;
pub mod runtime;
pub mod service;
pub mod service_env;
pub mod spec;
pub mod status;
pub mod worker;
#[cfg(test)]
mod worker_tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::watch;

use clusterd_runtime::image::ImageStore;
use clusterd_runtime::{Runtime, RuntimeConfig};

use crate::objects::conventions::NODE_LEASE_NAMESPACE;
use crate::objects::kinds::{LEASE, NODE, POD};
use crate::objects::typed::Object;
use crate::registry::informer::Change;
use crate::registry::{Registry, RegistryError};
use modify::{modify, typed};
use worker::NodeEnv;

/// How a node's kubelet is set up.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The node's name.
    pub name: String,
    /// What host resources (cgroups, bridge, nftables table) are named after:
    /// the node name and a tag of its cluster, so clusters share a host.
    pub host_key: String,
    /// The node's IP.
    pub ip: String,
    /// A control-plane node.
    pub control_plane: bool,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Lease duration written into the Lease.
    pub lease_seconds: u64,
    /// How often the Lease is renewed.
    pub renew_every: Duration,
    /// Pods the node takes at most.
    pub max_pods: u64,
    /// Registries pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The host's resolver settings, which pods with `dnsPolicy: Default` get.
    pub resolv_conf: PathBuf,
}

impl KubeletConfig {
    /// `<data>/runtime`.
    pub fn runtime_root(&self) -> PathBuf {
        self.data_dir.join("runtime")
    }

    /// `<data>/kubelet/pod-cidr`: the CIDR the runtime's network was made with.
    pub fn pod_cidr_file(&self) -> PathBuf {
        self.data_dir.join("kubelet").join("pod-cidr")
    }

    /// The runtime's configuration.
    pub fn runtime_config(&self, pod_cidr: Option<String>, cluster_cidr: Option<String>) -> RuntimeConfig {
        RuntimeConfig {
            node: self.host_key.clone(),
            root: self.runtime_root(),
            shim_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("clusterd")),
            max_log_bytes: 10 << 20,
            pod_cidr,
            cluster_cidr,
        }
    }
}

/// The tag of a cluster used in host resource names: 6 hex digits of its CA.
pub fn cluster_tag(ca_pem: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))[..6].to_string()
}

/// Register the node, keep its Lease, wait for its pod CIDR, then run pods.
/// Runs on the actix system (it starts the kubelet actor). When `stop` turns
/// true the kubelet stops renewing its Lease and routing pods, and its
/// workers end; the containers keep running (a restarted node finds them).
pub async fn run(cfg: KubeletConfig, store: Registry, stop: watch::Receiver<bool>) {
    tokio::select! {
        _ = run_until(cfg, store, stop.clone()) => {}
        _ = stopped(stop) => tracing::info!("kubelet: stopped"),
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn run_until(cfg: KubeletConfig, store: Registry, stop: watch::Receiver<bool>) {
    let images = match ImageStore::open(&cfg.runtime_root().join("images")) {
        Ok(i) => Arc::new(i),
        Err(e) => {
            tracing::error!(error = %e, "kubelet: cannot open the image store");
            return;
        }
    };
    let runtime_slot: Arc<OnceLock<Arc<Runtime>>> = Arc::new(OnceLock::new());
    store.node().set_service(Arc::new(service::KubeletService { runtime: runtime_slot.clone(), images }));

    let reg = node::Registration {
        name: cfg.name.clone(),
        ip: cfg.ip.clone(),
        control_plane: cfg.control_plane,
        max_pods: cfg.max_pods,
    };
    let node_uid = loop {
        match register(&store, &reg).await {
            Ok(uid) => break uid,
            Err(e) => {
                tracing::info!(error = %e, "kubelet: registering the node; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    tracing::info!(node = %cfg.name, "kubelet: node registered");
    // Renew well within the control plane's grace period (a quarter of it at most).
    let grace = store
        .reader()
        .get(crate::objects::conventions::CLUSTER_CONFIG_KEY)
        .ok()
        .flatten()
        .and_then(|kv| serde_json::from_slice::<ClusterConfig>(&kv.value).ok())
        .and_then(|c| c.node_grace_period_seconds)
        .unwrap_or(cfg.lease_seconds);
    let renew = cfg.renew_every.min(Duration::from_millis(grace * 250)).max(Duration::from_millis(500));
    let beat = heartbeat(store.clone(), reg, node_uid, grace, renew);
    let until = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = beat => {}
            _ = stopped(until) => {}
        }
    });

    let cidr = wait_pod_cidr(&store, &cfg.name).await;
    // Recorded (durably) before the runtime makes the bridge and nftables
    // table it names: `clusterd reset` finds the network through this file.
    if let Err(e) = save_pod_cidr(&cfg, &cidr) {
        tracing::error!(error = %e, "kubelet: cannot record the pod CIDR; the runtime is not started");
        return;
    }
    let cluster_cidr = store.settings().get("clusterCIDR").and_then(serde_json::Value::as_str).map(String::from);
    let rcfg = cfg.runtime_config(Some(cidr.clone()), cluster_cidr);
    let runtime = match tokio::task::spawn_blocking(move || Runtime::new(rcfg)).await {
        Ok(Ok(rt)) => Arc::new(rt),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "kubelet: the runtime did not start");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "kubelet: the runtime did not start");
            return;
        }
    };
    let _ = runtime_slot.set(runtime.clone());
    tracing::info!(node = %cfg.name, %cidr, "kubelet: runtime ready");
    tokio::spawn(routes::follow(store.clone(), runtime.clone(), cfg.name.clone(), cfg.ip.clone(), stop.clone()));
    let network = store.service_network();
    let env = Arc::new(NodeEnv {
        runtime: runtime::HostRuntime::new(runtime, cfg.insecure_registries.clone()),
        control: worker::StoreControl { store, component: format!("kubelet/{}", cfg.name) },
        host_ip: cfg.ip.clone(),
        pods_root: cfg.data_dir.join("kubelet").join("pods"),
        clock: executor::Clock::real(),
        network,
        host_resolv_conf: cfg.resolv_conf.clone(),
    });
    Kubelet { env, node_name: cfg.name.clone(), workers: HashMap::new(), synced: false, stop }.start();
}

/// Write the node's pod CIDR to [`KubeletConfig::pod_cidr_file`] and sync it.
fn save_pod_cidr(cfg: &KubeletConfig, cidr: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = cfg.pod_cidr_file();
    let dir = path.parent().expect("under the data directory");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(cidr.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What the kubelet reads of the cluster's settings (written at `init`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig {
    node_grace_period_seconds: Option<u64>,
}

/// Create the Node object or refresh its status; returns its uid.
async fn register(store: &Registry, reg: &node::Registration) -> Result<String, RegistryError> {
    let cap = node::host_capacity();
    if store.get(&NODE, "", &reg.name)?.is_none() {
        let object =
            serde_json::to_value(node::node_object(reg, &cap, &status::now())).map_err(RegistryError::internal)?;
        match store.create(object).await {
            Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let fresh = node::node_status(reg, &cap, &status::now());
    let control_plane = reg.control_plane;
    let updated = modify(store, &NODE, "", &reg.name, Object::node, |n| {
        node::refresh(n, fresh.clone());
        if control_plane {
            let labels = n.metadata.labels.get_or_insert_with(Default::default);
            labels.insert(node::CONTROL_PLANE_LABEL.into(), String::new());
        }
        true
    })
    .await?;
    Ok(updated.and_then(typed::<Node>).and_then(|n| n.metadata.uid).unwrap_or_default())
}

/// Renew the Lease every `every`; refresh the Node's status every minute.
async fn heartbeat(store: Registry, reg: node::Registration, node_uid: String, lease_secs: u64, every: Duration) {
    let mut last_status = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let micros = chrono::Utc::now().timestamp_micros();
        let now = MicroTime(k8s_openapi::jiff::Timestamp::from_microsecond(micros).unwrap_or_default());
        let r = match store.get(&LEASE, NODE_LEASE_NAMESPACE, &reg.name) {
            Ok(None) => match serde_json::to_value(node::lease_object(&reg.name, &node_uid, lease_secs, &now)) {
                Ok(lease) => store.create(lease).await.map(|_| ()),
                Err(e) => Err(RegistryError::internal(e)),
            },
            Ok(Some(_)) => modify(&store, &LEASE, NODE_LEASE_NAMESPACE, &reg.name, Object::lease, |l| {
                node::renew(l, &reg.name, &now);
                true
            })
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "kubelet: lease renewal failed");
        }
        // After the control plane marked the node unreachable, report at once that it is back.
        let stored = store.get(&NODE, "", &reg.name).ok().flatten().and_then(typed::<Node>);
        let not_ready = stored.is_some_and(|n| !node::ready(&n));
        if not_ready || last_status.elapsed() >= Duration::from_secs(60) {
            last_status = tokio::time::Instant::now();
            let fresh = node::node_status(&reg, &node::host_capacity(), &status::now());
            let r = modify(&store, &NODE, "", &reg.name, Object::node, |n| {
                node::refresh(n, fresh.clone());
                true
            });
            if let Err(e) = r.await {
                tracing::debug!(error = %e, "kubelet: node status update failed");
            }
        }
    }
}

/// Wait until the control plane has given this node a pod CIDR.
async fn wait_pod_cidr(store: &Registry, name: &str) -> String {
    use futures::StreamExt;
    let mut changes = store.watch(&NODE);
    let cidr_of = |n: &Object| {
        let node = n.node().filter(|node| node.metadata.name.as_deref() == Some(name))?;
        node.spec.as_ref()?.pod_cidr.clone()
    };
    while let Some(change) = changes.next().await {
        let found = match change {
            Change::Reset(list) => list.iter().find_map(|n| cidr_of(n)),
            Change::Put(n) => cidr_of(&n),
            Change::Delete(_) => None,
        };
        if let Some(c) = found {
            return c;
        }
    }
    std::future::pending().await
}

/// The kubelet actor: routes the node's pods to their workers.
pub struct Kubelet {
    env: Arc<NodeEnv>,
    node_name: String,
    workers: HashMap<String, watch::Sender<Option<Arc<Object>>>>,
    synced: bool,
    /// When it turns true the actor stops; dropping the workers' channels ends them.
    stop: watch::Receiver<bool>,
}

/// How often the kubelet removes sandboxes no pod of this node owns any more.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

#[derive(Message)]
#[rtype(result = "()")]
struct Pods(Change);

fn on_node(pod: &Object, node: &str) -> bool {
    pod.pod().and_then(|p| p.spec.as_ref()?.node_name.as_deref()) == Some(node)
}

/// A pod's uid ("" if it has none).
fn uid_of(pod: &Object) -> String {
    pod.metadata().and_then(|m| m.uid.clone()).unwrap_or_default()
}

impl Kubelet {
    fn upsert(&mut self, pod: Arc<Object>) {
        let uid = uid_of(&pod);
        match self.workers.get(&uid) {
            Some(tx) => {
                tx.send_replace(Some(pod));
            }
            None => {
                let (tx, rx) = watch::channel(Some(pod));
                tokio::spawn(worker::run(self.env.clone(), rx));
                self.workers.insert(uid, tx);
            }
        }
    }

    fn remove(&mut self, uid: &str) {
        if let Some(tx) = self.workers.remove(uid) {
            tx.send_replace(None);
        }
    }

    /// Remove sandboxes of pods this node no longer runs.
    fn clean_orphans(&self, keep: HashSet<String>) {
        let rt = self.env.runtime.inner().clone();
        tokio::task::spawn_blocking(move || {
            for s in rt.list_sandboxes().unwrap_or_default() {
                if !keep.contains(&s.config.uid) {
                    tracing::info!(pod = %s.config.name, "kubelet: removing the sandbox of a pod that is gone");
                    if let Err(e) = rt.remove_pod_sandbox(&s.id) {
                        tracing::warn!(error = %e, "kubelet: removing an orphaned sandbox failed");
                    }
                }
            }
        });
    }
}

impl Actor for Kubelet {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures::StreamExt;
        ctx.add_stream(self.env.control.store.watch(&POD).map(Pods));
        ctx.spawn(stopped(self.stop.clone()).into_actor(self).map(|_, act, ctx| {
            tracing::info!(workers = act.workers.len(), "kubelet: stopping its pod workers");
            ctx.stop();
        }));
        // Housekeeping: whatever escaped a worker (a sandbox made while its pod
        // was being deleted) goes once no worker claims it.
        ctx.run_interval(HOUSEKEEPING, |act, _| {
            if act.synced {
                act.clean_orphans(act.workers.keys().cloned().collect());
            }
        });
    }
}

impl StreamHandler<Pods> for Kubelet {
    fn handle(&mut self, Pods(change): Pods, _ctx: &mut Context<Self>) {
        let me = self.node_name.clone();
        match change {
            Change::Reset(list) => {
                let mine: Vec<Arc<Object>> = list.into_iter().filter(|p| on_node(p, &me)).collect();
                let keep: HashSet<String> = mine.iter().map(|p| uid_of(p)).collect();
                let gone: Vec<String> = self.workers.keys().filter(|u| !keep.contains(*u)).cloned().collect();
                for uid in gone {
                    self.remove(&uid);
                }
                for p in mine {
                    self.upsert(p);
                }
                self.clean_orphans(keep);
                self.synced = true;
            }
            Change::Put(p) => {
                if on_node(&p, &me) {
                    self.upsert(p);
                }
            }
            Change::Delete(p) => self.remove(&uid_of(&p)),
        }
    }
}
