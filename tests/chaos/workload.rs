//! The clients of a fault run: each does creates, compare-and-swap updates,
//! deletes and linearizable reads of a few hot keys through the gRPC API of
//! one node (another while its node does not answer), and records every call
//! with the times it was sent and answered and what the answer means for the
//! checkers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterd::api::pb;
use clusterd::client::ApiClient;
use clusterd::cluster::config::AdminConfig;
use clusterd_chaos::history::{Call, Key, Op, Outcome, Revision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tonic::Code;

/// The namespace of the workload's objects.
pub const NAMESPACE: &str = "chaos";
/// The label every object of the workload carries, as a selector.
pub const SELECTOR: &str = "chaos=1";
/// How long a client waits for an answer before it counts as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The hot keys.
pub const KEYS: usize = 8;
/// How long a client that left its node works through another before it tries its own again.
const AWAY: Duration = Duration::from_secs(5);

/// The run's clock: nanoseconds since the run began.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Hot key `i`.
pub fn key(i: usize) -> Key {
    format!("hot-{i}")
}

/// A ConfigMap of the workload holding `value`, at `rv` when given.
pub fn configmap(key: &str, value: &str, rv: Option<Revision>) -> String {
    let mut meta = json!({"name": key, "namespace": NAMESPACE, "labels": {"chaos": "1"}});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}).to_string()
}

/// What came back for a call.
#[derive(Debug)]
pub enum Answer {
    /// An object (create, update, delete: its last state, get).
    Object(Value),
    /// A list and its revision.
    List(Value, Revision),
    /// An error status.
    Failed(Code),
    /// No answer in time, or the connection broke.
    TimedOut,
}

/// (key, value, revision) of a stored ConfigMap of the workload.
pub fn item(obj: &Value) -> Option<(Key, String, Revision)> {
    let key = obj["metadata"]["name"].as_str()?.to_string();
    let value = obj["data"]["v"].as_str().unwrap_or_default().to_string();
    let rev = obj["metadata"]["resourceVersion"].as_str()?.parse().ok()?;
    Some((key, value, rev))
}

/// The items of a List document, by key.
pub fn items(list: &Value) -> Option<Vec<(Key, String, Revision)>> {
    let mut v: Vec<_> = list["items"].as_array()?.iter().map(item).collect::<Option<_>>()?;
    v.sort();
    Some(v)
}

/// What an answer to `call` means. The registry answers a stale
/// resourceVersion with ABORTED (`src/api/status.rs`); FAILED_PRECONDITION is
/// taken as the same. A write that failed any other way may still have taken
/// effect: unknown.
pub fn outcome(call: &Call, answer: Answer) -> Outcome {
    let unknown = Outcome::Unknown;
    match (call, answer) {
        (Call::Create { .. } | Call::Update { .. }, Answer::Object(o)) => {
            item(&o).map_or(unknown, |(_, _, revision)| Outcome::Written { revision })
        }
        (Call::Delete { .. }, Answer::Object(o)) => Outcome::Deleted { revision: item(&o).map(|(_, _, r)| r) },
        (Call::Get { .. }, Answer::Object(o)) => {
            item(&o).map_or(unknown, |(_, value, revision)| Outcome::Found { value, revision })
        }
        (Call::List, Answer::List(l, revision)) => {
            items(&l).map_or(unknown, |items| Outcome::Listed { revision, items })
        }
        (Call::Create { .. }, Answer::Failed(Code::AlreadyExists)) => Outcome::Exists,
        (Call::Update { .. } | Call::Delete { .. }, Answer::Failed(Code::Aborted | Code::FailedPrecondition)) => {
            Outcome::Conflict
        }
        (Call::Get { .. } | Call::Update { .. } | Call::Delete { .. }, Answer::Failed(Code::NotFound)) => {
            Outcome::NotFound
        }
        _ => unknown,
    }
}

/// Send `call` through `api`; the answer (or a timeout after [`OP_TIMEOUT`]).
pub async fn send(api: &mut ApiClient, call: &Call) -> Answer {
    let cm = "ConfigMap".to_string();
    let ns = NAMESPACE.to_string();
    let object = |r: Result<tonic::Response<pb::ObjectResponse>, tonic::Status>| match r {
        Ok(r) => serde_json::from_str(&r.into_inner().json).map_or(Answer::TimedOut, Answer::Object),
        Err(s) => Answer::Failed(s.code()),
    };
    let fut = async {
        match call {
            Call::Create { key, value } => {
                object(api.create(pb::ObjectRequest { json: configmap(key, value, None) }).await)
            }
            Call::Update { key, value, expected } => {
                object(api.update(pb::ObjectRequest { json: configmap(key, value, Some(*expected)) }).await)
            }
            Call::Delete { key, expected } => {
                let req = pb::DeleteRequest {
                    kind: cm,
                    namespace: ns,
                    name: key.clone(),
                    resource_version: expected.unwrap_or(0),
                    ..Default::default()
                };
                object(api.delete(req).await)
            }
            Call::Get { key } => {
                object(api.get(pb::GetRequest { kind: cm, namespace: ns, name: key.clone(), linearizable: true }).await)
            }
            Call::List => {
                let req = pb::ListRequest {
                    kind: cm,
                    namespace: ns,
                    label_selector: SELECTOR.into(),
                    linearizable: true,
                    ..Default::default()
                };
                match api.list(req).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        serde_json::from_str(&r.json).map_or(Answer::TimedOut, |l| Answer::List(l, r.resource_version))
                    }
                    Err(s) => Answer::Failed(s.code()),
                }
            }
        }
    };
    tokio::time::timeout(OP_TIMEOUT, fut).await.unwrap_or(Answer::TimedOut)
}

/// A connection to `server`, if one is made within a short time.
pub async fn dial(cfg: &AdminConfig, server: &str) -> Option<ApiClient> {
    let servers = [server.to_string()];
    let c = clusterd::client::connect(cfg, &servers);
    match tokio::time::timeout(CONNECT_TIMEOUT, c).await {
        Ok(Ok((api, _))) => Some(api),
        _ => None,
    }
}

/// The next call of a client that believes `known` of the keys (Some(rev):
/// the key exists at rev; None: it does not exist; absent: no idea).
fn next_call(rng: &mut StdRng, known: &HashMap<Key, Option<Revision>>, value: String) -> Call {
    let key = key(rng.gen_range(0..KEYS));
    let r: f64 = rng.gen();
    let belief = known.get(&key).copied();
    match (r, belief) {
        (r, _) if r < 0.15 => Call::Get { key },
        (r, _) if r < 0.25 => Call::List,
        // A stale or made-up resourceVersion now and then: a conflict.
        (r, Some(Some(rev))) if r < 0.30 => Call::Update { key, value, expected: rev.saturating_sub(1).max(1) },
        (r, Some(Some(rev))) if r < 0.85 => Call::Update { key, value, expected: rev },
        (r, Some(Some(rev))) if r < 0.95 => Call::Delete { key, expected: Some(rev) },
        (_, Some(Some(_))) => Call::Delete { key, expected: None },
        (r, Some(None)) if r < 0.90 => Call::Create { key, value },
        (_, Some(None)) => Call::Update { key, value, expected: 1 },
        // No idea: mostly read first, sometimes try a create.
        (r, None) if r < 0.70 => Call::Get { key },
        (_, None) => Call::Create { key, value },
    }
}

/// What the client believes after `op`.
fn learn(known: &mut HashMap<Key, Option<Revision>>, op: &Op) {
    let touched = op.call.key().cloned();
    match (&op.outcome, touched) {
        (Outcome::Written { revision }, Some(k)) | (Outcome::Found { revision, .. }, Some(k)) => {
            known.insert(k, Some(*revision));
        }
        (Outcome::Deleted { .. } | Outcome::NotFound, Some(k)) => {
            known.insert(k, None);
        }
        (Outcome::Listed { items, .. }, _) => {
            for i in 0..KEYS {
                let k = key(i);
                let rev = items.iter().find(|(ik, _, _)| *ik == k).map(|(_, _, r)| *r);
                known.insert(k, rev);
            }
        }
        (_, Some(k)) => {
            known.remove(&k);
        }
        _ => {}
    }
}

/// One client: calls through node `home` (or, while it does not answer,
/// another) until `stop`; every call recorded.
pub async fn client(
    id: usize,
    cfg: AdminConfig,
    servers: Vec<String>,
    seed: u64,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Vec<Op> {
    let home = id % servers.len();
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut known = HashMap::new();
    let mut ops = Vec::new();
    let (mut target, mut left_home) = (home, None::<Instant>);
    let mut api = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if target != home && left_home.is_some_and(|t| t.elapsed() > AWAY) {
            (target, left_home, api) = (home, None, None);
        }
        let Some(c) = api.as_mut() else {
            api = dial(&cfg, &servers[target]).await;
            if api.is_none() {
                target = (target + 1) % servers.len();
                left_home = left_home.or(Some(Instant::now()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        seq += 1;
        let call = next_call(&mut rng, &known, format!("c{id}-{seq}"));
        let invoke = clock.now();
        let answer = send(c, &call).await;
        let complete = clock.now();
        let outcome = outcome(&call, answer);
        let op = Op { client: id, invoke, complete, call, outcome };
        learn(&mut known, &op);
        if op.outcome == Outcome::Unknown {
            api = None;
            target = (target + 1) % servers.len();
            left_home = left_home.or(Some(Instant::now()));
        }
        ops.push(op);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(value: &str, rv: u64) -> Value {
        json!({"metadata": {"name": "hot-1", "resourceVersion": rv.to_string()}, "data": {"v": value}})
    }

    #[test]
    fn answers_mean_outcomes() {
        let create = Call::Create { key: "hot-1".into(), value: "c0-1".into() };
        let update = Call::Update { key: "hot-1".into(), value: "c0-2".into(), expected: 7 };
        let delete = Call::Delete { key: "hot-1".into(), expected: Some(9) };
        let get = Call::Get { key: "hot-1".into() };
        let list = Call::List;
        let cases: Vec<(&Call, Answer, Outcome)> = vec![
            (&create, Answer::Object(cm("c0-1", 7)), Outcome::Written { revision: 7 }),
            (&create, Answer::Failed(Code::AlreadyExists), Outcome::Exists),
            (&create, Answer::Failed(Code::NotFound), Outcome::Unknown),
            (&create, Answer::Failed(Code::Unavailable), Outcome::Unknown),
            (&create, Answer::TimedOut, Outcome::Unknown),
            (&update, Answer::Object(cm("c0-2", 9)), Outcome::Written { revision: 9 }),
            (&update, Answer::Failed(Code::Aborted), Outcome::Conflict),
            (&update, Answer::Failed(Code::FailedPrecondition), Outcome::Conflict),
            (&update, Answer::Failed(Code::NotFound), Outcome::NotFound),
            (&update, Answer::Failed(Code::Internal), Outcome::Unknown),
            (&update, Answer::Failed(Code::DeadlineExceeded), Outcome::Unknown),
            (&delete, Answer::Object(cm("c0-2", 12)), Outcome::Deleted { revision: Some(12) }),
            (&delete, Answer::Failed(Code::Aborted), Outcome::Conflict),
            (&delete, Answer::Failed(Code::NotFound), Outcome::NotFound),
            (&delete, Answer::TimedOut, Outcome::Unknown),
            (&get, Answer::Object(cm("c0-2", 9)), Outcome::Found { value: "c0-2".into(), revision: 9 }),
            (&get, Answer::Failed(Code::NotFound), Outcome::NotFound),
            (&get, Answer::Failed(Code::Unavailable), Outcome::Unknown),
            (&get, Answer::Failed(Code::AlreadyExists), Outcome::Unknown),
            (
                &list,
                Answer::List(json!({"items": [cm("c0-2", 9)]}), 15),
                Outcome::Listed { revision: 15, items: vec![("hot-1".into(), "c0-2".into(), 9)] },
            ),
            (&list, Answer::Failed(Code::Unavailable), Outcome::Unknown),
            (&list, Answer::List(json!({"kind": "ConfigMapList"}), 15), Outcome::Unknown),
        ];
        for (call, answer, want) in cases {
            let what = format!("{call:?} {answer:?}");
            assert_eq!(outcome(call, answer), want, "{what}");
        }
    }

    #[test]
    fn a_client_learns_from_answers_and_forgets_on_doubt() {
        let mut known = HashMap::new();
        let op = |call: Call, outcome: Outcome| Op { client: 0, invoke: 0, complete: 1, call, outcome };
        learn(&mut known, &op(Call::Get { key: key(1) }, Outcome::Found { value: "x".into(), revision: 4 }));
        assert_eq!(known.get(&key(1)), Some(&Some(4)));
        learn(&mut known, &op(Call::Update { key: key(1), value: "y".into(), expected: 4 }, Outcome::Unknown));
        assert_eq!(known.get(&key(1)), None, "an unknown write leaves the key in doubt");
        learn(&mut known, &op(Call::List, Outcome::Listed { revision: 9, items: vec![(key(2), "z".into(), 8)] }));
        assert_eq!((known.get(&key(1)), known.get(&key(2))), (Some(&None), Some(&Some(8))));
        learn(
            &mut known,
            &op(Call::Delete { key: key(2), expected: Some(8) }, Outcome::Deleted { revision: Some(10) }),
        );
        assert_eq!(known.get(&key(2)), Some(&None));
    }
}
