//! Acknowledged writes survive crashes. Concurrent writers create objects and
//! record every write the cluster acknowledged, with the resourceVersion it
//! returned, while the leader is killed with -9 five times and a follower
//! (in the middle of a stream of appends and WAL syncs) once. Afterwards
//! every node holds every acknowledged object with its value at the revision
//! that was acknowledged, and no revision names two different objects.
//!
//! The same runs again with the nodes in the store's power-loss mode
//! (`CLUSTERD_FAILPOINT=power-loss`): there a kill loses every write the node
//! had not synced, as a power cut loses the page cache, while a plain kill -9
//! loses nothing the process wrote.

mod fixtures;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clusterd::api::pb;
use clusterd::cluster::config::AdminConfig;
use fixtures::{wait_for, Cluster};
use serde_json::{json, Value};

/// Concurrent writers.
const WRITERS: usize = 8;
/// Acknowledged writes awaited before each kill, and again after it.
const BATCH: usize = 40;
const NAMESPACE: &str = "default";

/// A write the cluster acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    name: String,
    value: String,
    revision: String,
    /// When it was acknowledged.
    at: std::time::Instant,
}

type Acks = Arc<Mutex<Vec<Ack>>>;

fn configmap(name: &str, value: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
           "data": {"v": value}})
    .to_string()
}

/// Create `w{writer}-{i}` objects one after another through some node until
/// `stop`; a write that fails or times out has an unknown outcome: the writer
/// moves to the next name (and the next node), so only acknowledged writes
/// are recorded and checked.
async fn writer(w: usize, cfg: AdminConfig, servers: Vec<String>, acks: Acks, stop: Arc<AtomicBool>) {
    let mut target = w % servers.len();
    let mut client = None;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(api) = client.as_mut() else {
            let server = [servers[target].clone()];
            match tokio::time::timeout(Duration::from_secs(5), clusterd::client::connect(&cfg, &server)).await {
                Ok(Ok((c, _))) => client = Some(c),
                _ => {
                    target = (target + 1) % servers.len();
                    // The node is down: try the next one after a short pause.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let name = format!("w{w}-{i}");
        let value = format!("writer {w} write {i} {}", "x".repeat(200));
        i += 1;
        let req = pb::ObjectRequest { json: configmap(&name, &value) };
        match tokio::time::timeout(Duration::from_secs(10), api.create(req)).await {
            Ok(Ok(resp)) => {
                let stored: Value = serde_json::from_str(&resp.into_inner().json).expect("the stored object");
                let revision = stored["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").to_string();
                assert_eq!(stored["data"]["v"], value.as_str(), "the acknowledged object is the one written");
                acks.lock().unwrap().push(Ack { name, value, revision, at: std::time::Instant::now() });
            }
            _ => {
                client = None;
                target = (target + 1) % servers.len();
            }
        }
    }
}

/// The leader's name as node `idx` reports it.
fn leader_seen_by(c: &Cluster, idx: usize) -> Option<String> {
    let out = c.cli_at(idx, &["status", "-o", "json"]);
    let st: Value = serde_json::from_slice(&out.stdout).ok()?;
    st["leader"].as_str().filter(|l| !l.is_empty()).map(String::from)
}

/// Every ConfigMap of the namespace on node `idx`: name -> (value, revision).
async fn stored_on(cfg: &AdminConfig, server: &str) -> Option<BTreeMap<String, (String, String)>> {
    let (mut api, _) = clusterd::client::connect(cfg, &[server.to_string()]).await.ok()?;
    let req = pb::ListRequest { kind: "ConfigMap".into(), namespace: NAMESPACE.into(), ..Default::default() };
    let list: Value = serde_json::from_str(&api.list(req).await.ok()?.into_inner().json).ok()?;
    let items = list["items"].as_array()?;
    Some(
        items
            .iter()
            .map(|o| {
                let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let value = o["data"]["v"].as_str().unwrap_or_default().to_string();
                let revision = o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                (name, (value, revision))
            })
            .collect(),
    )
}

/// Three voters and writers creating objects through them until stopped.
struct Load {
    c: Cluster,
    cfg: AdminConfig,
    servers: Vec<String>,
    rt: tokio::runtime::Runtime,
    acks: Acks,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    /// The environment of the nodes' processes.
    env: Vec<(&'static str, &'static str)>,
}

impl Load {
    fn start() -> Load {
        Self::start_with_env(Vec::new())
    }

    /// Three voters restarted with `env` once they formed the cluster, then
    /// the writers.
    fn start_with_env(env: Vec<(&'static str, &'static str)>) -> Load {
        clusterd_raft::pki::install_default_provider();
        let mut c = Cluster::init(&[]);
        c.join("n2", true);
        c.join("n3", true);
        if !env.is_empty() {
            for idx in 0..c.nodes.len() {
                let status = c.nodes[idx].stop();
                assert!(status.success(), "{} exited {status:?} on SIGTERM", c.nodes[idx].name);
                c.nodes[idx].restart_with_env(&env);
                c.wait_serving(idx);
            }
        }
        let cfg = AdminConfig::load(&c.config).unwrap();
        let servers: Vec<String> = c.nodes.iter().map(|n| n.api_addr.clone()).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let acks: Acks = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..WRITERS)
            .map(|w| rt.spawn(writer(w, cfg.clone(), servers.clone(), acks.clone(), stop.clone())))
            .collect();
        Load { c, cfg, servers, rt, acks, stop, writers, env }
    }

    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Wait for another [`BATCH`] acknowledged writes.
    fn more_acks(&self, what: &str) {
        let from = self.acked();
        wait_for(what, Duration::from_secs(90), || (self.acked() >= from + BATCH).then_some(()));
    }

    /// Stop the writers; then every node must hold every acknowledged object
    /// with its value at the revision that was acknowledged, and no revision
    /// may name two different objects.
    fn stop_and_check(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in std::mem::take(&mut self.writers) {
            self.rt.block_on(w).expect("a writer ended cleanly");
        }
        let acks = self.acks.lock().unwrap().clone();
        eprintln!("--- {} writes acknowledged; every node must hold each of them", acks.len());
        let mut revisions: BTreeMap<String, String> = BTreeMap::new();
        for (idx, server) in self.servers.iter().enumerate() {
            let node = &self.c.nodes[idx].name;
            let stored = wait_for(&format!("{node} to hold every acknowledged write"), Duration::from_secs(60), || {
                let stored = self.rt.block_on(stored_on(&self.cfg, server))?;
                acks.iter().all(|a| stored.contains_key(&a.name)).then_some(stored)
            });
            for a in &acks {
                let (value, revision) = &stored[&a.name];
                assert_eq!(value, &a.value, "{} on {node}: the acknowledged value", a.name);
                assert_eq!(revision, &a.revision, "{} on {node}: the acknowledged revision", a.name);
            }
            for (name, (_, revision)) in &stored {
                let first = revisions.entry(revision.clone()).or_insert_with(|| name.clone());
                assert_eq!(first, name, "revision {revision} names two objects (seen on {node})");
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_five_leader_kills_and_a_follower_kill() {
    kill_five_leaders_and_a_follower(Load::start());
}

#[test]
fn acknowledged_writes_survive_five_leader_power_cuts_and_a_follower_power_cut() {
    let t = std::time::Instant::now();
    kill_five_leaders_and_a_follower(Load::start_with_env(vec![("CLUSTERD_FAILPOINT", "power-loss")]));
    eprintln!("--- power cuts: {:?}", t.elapsed());
}

/// Kill -9 the leader five times, then a follower, each while the writers
/// run, and check every acknowledged write on every node.
fn kill_five_leaders_and_a_follower(mut load: Load) {
    let mut leaders_killed = Vec::new();
    for round in 0..6 {
        load.more_acks("writes acknowledged before the kill");
        let acked = load.acked();
        let c = &mut load.c;
        let live = (0..c.nodes.len()).find(|&i| c.nodes[i].alive()).expect("a live node");
        let leader = wait_for("a leader", Duration::from_secs(30), || leader_seen_by(c, live));
        let li = c.nodes.iter().position(|n| n.name == leader).expect("the leader is a node");
        // Five leaders, then a follower, each killed while the writers run.
        let victim = if round < 5 { li } else { (li + 1) % c.nodes.len() };
        eprintln!("--- round {round}: kill -9 {} ({acked} writes acknowledged)", c.nodes[victim].name);
        c.nodes[victim].kill9();
        if round < 5 {
            leaders_killed.push(leader);
        }
        load.more_acks("writes acknowledged by the survivors");
        load.c.nodes[victim].restart_with_env(&load.env);
        load.c.wait_serving(victim);
    }
    load.more_acks("writes acknowledged with every node back");
    assert_eq!(leaders_killed.len(), 5);
    load.stop_and_check();
}

#[test]
fn a_rolling_restart_under_writes_loses_no_acknowledged_write() {
    let mut load = Load::start();
    // As an upgrade does it: each node in turn stopped (SIGTERM), started
    // again from its data dir, and serving before the next one goes.
    for idx in 0..load.c.nodes.len() {
        load.more_acks("writes acknowledged before the restart");
        let t = std::time::Instant::now();
        let status = load.c.nodes[idx].stop();
        assert!(status.success(), "{} exited {status:?} on SIGTERM", load.c.nodes[idx].name);
        load.c.nodes[idx].restart();
        load.c.wait_serving(idx);
        let down = t.elapsed();
        load.more_acks("writes acknowledged after the restart");
        // The cluster's downtime for writes: the longest pause between two
        // acknowledgements since the node was stopped.
        let mut times: Vec<std::time::Instant> = load.acks.lock().unwrap().iter().map(|a| a.at).collect();
        times.sort();
        let gap = times.windows(2).filter(|w| w[1] > t).map(|w| w[1] - w[0]).max().unwrap_or_default();
        eprintln!(
            "--- {}: restarted in {down:?}; longest pause between acknowledged writes {gap:?} ({} acknowledged)",
            load.c.nodes[idx].name,
            load.acked()
        );
    }
    load.more_acks("writes acknowledged with every node restarted");
    load.stop_and_check();
}
