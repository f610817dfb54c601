//! The gRPC service: admission, then a compare-and-swap proposal through Raft;
//! reads from the local replica (or after a read barrier); watches from the
//! replica's history and live feed.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use clusterd_raft::pki::Ca;
use clusterd_raft::{Command, Compare, EventKind, KeyValue, Op, RaftNode, StoreReader, Txn, WatchItem};

use super::auth::authorize;
use super::keys;
use super::pb::{self, clusterd_server::Clusterd};
use super::tokens::JoinToken;
use crate::objects::admission::{self, AdmissionError};
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::{meta_str, with_resource_version, Kind};
use crate::util;

/// How long a write waits for a leader.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// The API service of one node.
#[derive(Clone)]
pub struct Api {
    node: Arc<RaftNode>,
    store: StoreReader,
}

impl Api {
    /// Serve the API from this node.
    pub fn new(node: Arc<RaftNode>) -> Self {
        let store = node.store.clone();
        Api { node, store }
    }

    /// The local replica.
    pub fn store(&self) -> &StoreReader {
        &self.store
    }

    /// The Raft member.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }
}

fn admission_status(e: AdmissionError) -> Status {
    match e {
        AdmissionError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        AdmissionError::BadRequest(_) => Status::invalid_argument(e.to_string()),
        AdmissionError::TooLarge(_) => Status::resource_exhausted(e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

fn not_found(kind: &Kind, name: &str) -> Status {
    Status::not_found(format!("{} \"{}\" not found", kind.plural, name))
}

fn conflict(kind: &Kind, name: &str) -> Status {
    Status::aborted(format!(
        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
        kind.plural, name
    ))
}

fn resolve(kind: &str) -> Result<&'static Kind, Status> {
    Kind::resolve(kind).ok_or_else(|| Status::not_found(format!("the server doesn't have a resource type \"{kind}\"")))
}

fn namespace_or_default<'a>(kind: &Kind, ns: &'a str) -> &'a str {
    if !kind.namespaced {
        ""
    } else if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

fn object_json(kv: &KeyValue) -> Result<Value, Status> {
    with_resource_version(&kv.value, kv.mod_revision).map_err(internal)
}

fn parse_rv(obj: &Value) -> Result<Option<u64>, Status> {
    let rv = meta_str(obj, "resourceVersion");
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse()
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("metadata.resourceVersion: Invalid value: \"{rv}\"")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

impl Api {
    async fn read_barrier(&self, linearizable: bool) -> Result<(), Status> {
        if linearizable {
            self.node.read_barrier(WRITE_WAIT).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn propose(&self, txn: Txn) -> Result<clusterd_raft::CommandResponse, Status> {
        self.node.propose(Command::Txn(txn), WRITE_WAIT).await.map_err(unavailable)
    }

    /// Create an object that has passed admission.
    pub async fn create_admitted(&self, a: admission::Admitted) -> Result<Value, Status> {
        if crate::actors::store::terminating(&self.store, &a.namespace) {
            return Err(Status::permission_denied(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                a.kind.plural, a.name, a.namespace
            )));
        }
        let resp = self.propose(a.create_txn().map_err(admission_status)?).await?;
        match resp.failed_compare {
            None => {
                let mut body = a.body;
                body["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
                Ok(body)
            }
            Some(0) => Err(Status::already_exists(format!("{} \"{}\" already exists", a.kind.plural, a.name))),
            Some(_) => Err(Status::not_found(format!("namespaces \"{}\" not found", a.namespace))),
        }
    }

    async fn update(&self, json_body: &str, status_only: bool) -> Result<Value, Status> {
        let (kind, obj) = admission::parse(json_body).map_err(admission_status)?;
        let ns = namespace_or_default(kind, meta_str(&obj, "namespace")).to_string();
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{} \"\" is invalid: metadata.name: Required value",
                kind.kind
            )));
        }
        let key = kind.key(&ns, &name);
        let expected = parse_rv(&obj)?;
        // Without a resourceVersion the update is unconditional: retry on races.
        for _ in 0..5 {
            let existing = self.store.get(&key).map_err(internal)?.ok_or_else(|| not_found(kind, &name))?;
            if expected.is_some_and(|rv| rv != existing.mod_revision) {
                return Err(conflict(kind, &name));
            }
            let current: Value = serde_json::from_slice(&existing.value).map_err(internal)?;
            let a = admission::for_update(kind, obj.clone(), &current, status_only).map_err(admission_status)?;
            if a.body == current {
                return object_json(&existing);
            }
            let bytes = a.bytes().map_err(admission_status)?;
            let txn = Txn {
                compares: vec![Compare::ModRevision(key.clone(), existing.mod_revision)],
                success: vec![Op::Put { key: key.clone(), value: bytes }],
            };
            let resp = self.propose(txn).await?;
            if resp.failed_compare.is_none() {
                let mut body = a.body;
                body["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
                return Ok(body);
            }
            if expected.is_some() || resp.current.is_none() {
                return match resp.current {
                    None => Err(not_found(kind, &name)),
                    Some(_) => Err(conflict(kind, &name)),
                };
            }
        }
        Err(conflict(kind, &name))
    }

    fn member_infos(&self) -> Vec<pb::MemberInfo> {
        self.node
            .members()
            .into_iter()
            .map(|(id, m, voter)| pb::MemberInfo {
                id,
                name: m.name,
                role: if voter { "voter" } else { "learner" }.into(),
                raft_addr: m.raft_addr,
                api_addr: m.api_addr,
                last_applied: None,
            })
            .collect()
    }

    /// Create a join token valid for `ttl`.
    pub async fn create_token(&self, ttl: Duration) -> Result<String, Status> {
        let ca = self.ca()?;
        let token = JoinToken::generate(&ca.fingerprint().map_err(internal)?);
        let expiration = util::rfc3339(chrono::Utc::now() + chrono::Duration::from_std(ttl).map_err(internal)?);
        let obj = token.secret_object(&expiration);
        let kind = Kind::of(&obj).expect("secret kind");
        let a = admission::for_create(kind, obj, &util::create_context().as_ref()).map_err(admission_status)?;
        self.create_admitted(a).await?;
        Ok(token.to_string())
    }

    fn ca(&self) -> Result<Ca, Status> {
        let kv =
            self.store.get(keys::CA).map_err(internal)?.ok_or_else(|| Status::internal("the cluster CA is missing"))?;
        serde_json::from_slice(&kv.value).map_err(internal)
    }
}

#[tonic::async_trait]
impl Clusterd for Api {
    async fn create(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(&self.store, &req)?;
        let (kind, obj) = admission::parse(&req.get_ref().json).map_err(admission_status)?;
        let ctx = util::create_context();
        let a = admission::for_create(kind, obj, &ctx.as_ref()).map_err(admission_status)?;
        let body = self.create_admitted(a).await?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(&self.store, &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        self.read_barrier(r.linearizable).await?;
        let key = kind.key(namespace_or_default(kind, &r.namespace), &r.name);
        let kv = self.store.get(&key).map_err(internal)?.ok_or_else(|| not_found(kind, &r.name))?;
        Ok(Response::new(pb::ObjectResponse { json: object_json(&kv)?.to_string() }))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        authorize(&self.store, &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let labels = LabelSelector::parse(&r.label_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fields = FieldSelector::parse(&r.field_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.read_barrier(r.linearizable).await?;
        let ns = if kind.namespaced { Some(r.namespace.as_str()) } else { None };
        let (kvs, revision) = self.store.list(&kind.prefix(ns)).map_err(internal)?;
        let mut items = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let obj = object_json(kv)?;
            if labels.matches(&obj) && fields.matches(&obj) {
                items.push(obj);
            }
        }
        let list = json!({
            "apiVersion": kind.api_version,
            "kind": kind.list_kind(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        });
        Ok(Response::new(pb::ListResponse { json: list.to_string(), resource_version: revision }))
    }

    async fn update(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(&self.store, &req)?;
        let body = Api::update(self, &req.get_ref().json, false).await?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn update_status(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(&self.store, &req)?;
        let body = Api::update(self, &req.get_ref().json, true).await?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(&self.store, &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let key = kind.key(namespace_or_default(kind, &r.namespace), &r.name);
        let existing = self.store.get(&key).map_err(internal)?.ok_or_else(|| not_found(kind, &r.name))?;
        if r.resource_version != 0 && r.resource_version != existing.mod_revision {
            return Err(conflict(kind, &r.name));
        }
        let current: Value = serde_json::from_slice(&existing.value).map_err(internal)?;
        let planned =
            super::deletion::plan(kind, &current, r.grace_period_seconds, &r.propagation_policy, chrono::Utc::now())
                .map_err(Status::invalid_argument)?;
        if let Some(marked) = planned {
            if marked == current {
                return Ok(Response::new(pb::ObjectResponse { json: object_json(&existing)?.to_string() }));
            }
            let txn = Txn {
                compares: vec![Compare::ModRevision(key.clone(), existing.mod_revision)],
                success: vec![Op::Put { key, value: serde_json::to_vec(&marked).map_err(internal)? }],
            };
            let resp = self.propose(txn).await?;
            if resp.failed_compare.is_some() {
                return Err(conflict(kind, &r.name));
            }
            let mut body = marked;
            body["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
            return Ok(Response::new(pb::ObjectResponse { json: body.to_string() }));
        }
        let txn = Txn {
            compares: vec![Compare::ModRevision(key.clone(), existing.mod_revision)],
            success: vec![Op::Delete { key }],
        };
        let resp = self.propose(txn).await?;
        if resp.failed_compare.is_some() {
            return match resp.current {
                None => Err(not_found(kind, &r.name)),
                Some(_) => Err(conflict(kind, &r.name)),
            };
        }
        let mut last = existing;
        last.mod_revision = resp.revision;
        Ok(Response::new(pb::ObjectResponse { json: object_json(&last)?.to_string() }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        authorize(&self.store, &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let labels = LabelSelector::parse(&r.label_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fields = FieldSelector::parse(&r.field_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ns = if kind.namespaced && !r.namespace.is_empty() { Some(r.namespace.as_str()) } else { None };
        let prefix = kind.prefix(ns);
        let mut initial = Vec::new();
        let from = if r.resource_version == 0 {
            if r.send_initial_events {
                let (kvs, rev) = self.store.list(&prefix).map_err(internal)?;
                for kv in &kvs {
                    let obj = object_json(kv)?;
                    if labels.matches(&obj) && fields.matches(&obj) {
                        initial.push(Ok(pb::WatchEvent {
                            r#type: "ADDED".into(),
                            json: obj.to_string(),
                            resource_version: kv.mod_revision,
                        }));
                    }
                }
                rev
            } else {
                self.store.revision()
            }
        } else {
            r.resource_version
        };
        if from < self.store.compacted() {
            return Err(Status::out_of_range(format!(
                "Gone: too old resource version: {from} ({})",
                self.store.compacted()
            )));
        }
        let bookmarks = r.allow_bookmarks.then(|| Duration::from_secs(1));
        let (api_version, kind_name) = (kind.api_version, kind.kind);
        let events = self.store.watch(prefix, from, bookmarks).filter_map(move |item| {
            let out = match item {
                Err(gone) => Some(Err(Status::out_of_range(format!("Gone: {gone}")))),
                Ok(WatchItem::Progress(rev)) => Some(Ok(pb::WatchEvent {
                    r#type: "BOOKMARK".into(),
                    json: json!({"apiVersion": api_version, "kind": kind_name, "metadata": {"resourceVersion": rev.to_string()}}).to_string(),
                    resource_version: rev,
                })),
                Ok(WatchItem::Event(ev)) => match with_resource_version(&ev.kv.value, ev.revision) {
                    Ok(obj) if labels.matches(&obj) && fields.matches(&obj) => {
                        let ty = match (ev.kind, ev.existed) {
                            (EventKind::Delete, _) => "DELETED",
                            (EventKind::Put, true) => "MODIFIED",
                            (EventKind::Put, false) => "ADDED",
                        };
                        Some(Ok(pb::WatchEvent { r#type: ty.into(), json: obj.to_string(), resource_version: ev.revision }))
                    }
                    _ => None,
                },
            };
            futures::future::ready(out)
        });
        let stream = futures::stream::iter(initial).chain(events);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        authorize(&self.store, &req)?;
        let st = self.node.cluster_status(WRITE_WAIT).await.map_err(unavailable)?;
        let leader = st.leader.and_then(|l| st.members.iter().find(|m| m.id == l)).map(|m| m.member.name.clone());
        let members = st
            .members
            .into_iter()
            .map(|m| pb::MemberInfo {
                id: m.id,
                name: m.member.name,
                role: if m.voter { "voter" } else { "learner" }.into(),
                raft_addr: m.member.raft_addr,
                api_addr: m.member.api_addr,
                last_applied: m.last_applied,
            })
            .collect();
        Ok(Response::new(pb::StatusResponse { leader: leader.unwrap_or_default(), members }))
    }

    async fn members(&self, req: Request<pb::MembersRequest>) -> Result<Response<pb::MembersResponse>, Status> {
        authorize(&self.store, &req)?;
        Ok(Response::new(pb::MembersResponse { members: self.member_infos() }))
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        // No client certificate yet: the join token is the credential.
        let r = req.into_inner();
        let token = JoinToken::parse(&r.token).map_err(|e| Status::unauthenticated(e.to_string()))?;
        let ca = self.ca()?;
        if token.ca_fingerprint != ca.fingerprint().map_err(internal)? {
            return Err(Status::unauthenticated("invalid join token"));
        }
        let secret_kind = Kind::resolve("secret").expect("secret kind");
        self.read_barrier(true).await?;
        let secret = self
            .store
            .get(&secret_kind.key("kube-system", &token.secret_name()))
            .map_err(internal)?
            .ok_or_else(|| Status::unauthenticated("invalid join token"))?;
        let secret: Value = serde_json::from_slice(&secret.value).map_err(internal)?;
        token.check(&secret, &util::now()).map_err(Status::unauthenticated)?;
        if !crate::objects::validate::is_dns1123_subdomain(&r.name) {
            return Err(Status::invalid_argument(format!(
                "name: Invalid value: \"{}\": must be a lowercase RFC 1123 subdomain",
                r.name
            )));
        }
        for (field, addr) in [("raft_addr", &r.raft_addr), ("api_addr", &r.api_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(Status::invalid_argument(format!("{field}: Invalid value: \"{addr}\": must be IP:port")));
            }
        }
        // The registration's revision becomes the node id: unique and never reused.
        let key = format!("{}{}", keys::MEMBERS, r.name);
        let record =
            json!({"name": r.name, "raftAddr": r.raft_addr, "apiAddr": r.api_addr, "controlPlane": r.control_plane});
        let txn = Txn {
            compares: vec![Compare::ModRevision(key.clone(), 0)],
            success: vec![Op::Put { key, value: record.to_string().into_bytes() }],
        };
        let resp = self.propose(txn).await?;
        if resp.failed_compare.is_some() {
            return Err(Status::already_exists(format!("a node named \"{}\" is already registered", r.name)));
        }
        let hosts = [&r.raft_addr, &r.api_addr]
            .iter()
            .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip().to_string())
            .chain([r.name.clone()])
            .collect::<Vec<_>>();
        let id = ca.issue(&format!("system:node:{}", r.name), &hosts).map_err(internal)?;
        let peers = self.node.members().into_iter().map(|(_, m, _)| m.raft_addr).collect();
        Ok(Response::new(pb::JoinResponse {
            node_id: resp.revision,
            ca_cert: ca.cert_pem().to_string(),
            node_cert: id.cert_pem,
            node_key: id.key_pem,
            peers,
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        authorize(&self.store, &req)?;
        let name = req.into_inner().name;
        let (id, _, _) = self
            .node
            .members()
            .into_iter()
            .find(|(_, m, _)| m.name == name)
            .ok_or_else(|| Status::not_found(format!("no member named \"{name}\"")))?;
        self.node.remove_member(id, WRITE_WAIT).await.map_err(unavailable)?;
        let key = format!("{}{}", keys::MEMBERS, name);
        self.propose(Txn::ops(vec![Op::Delete { key }])).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        authorize(&self.store, &req)?;
        let ttl = match req.get_ref().ttl_seconds {
            0 => Duration::from_secs(24 * 3600),
            s => Duration::from_secs(s),
        };
        Ok(Response::new(pb::CreateTokenResponse { token: Api::create_token(self, ttl).await? }))
    }

    async fn compact(&self, req: Request<pb::CompactRequest>) -> Result<Response<pb::CompactResponse>, Status> {
        authorize(&self.store, &req)?;
        let current = self.store.revision();
        let rev = match req.get_ref().revision {
            0 => current.saturating_sub(1),
            r if r > current => {
                return Err(Status::out_of_range(format!("revision {r} is in the future (current {current})")))
            }
            r => r,
        };
        self.node.propose(Command::Compact(rev), WRITE_WAIT).await.map_err(unavailable)?;
        Ok(Response::new(pb::CompactResponse { compacted: self.store.compacted() }))
    }

    type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogsChunk, Status>> + Send>>;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        authorize(&self.store, &req)?;
        let r = req.into_inner();
        let lines = super::pods::log_lines(self, &r).await?;
        let skip = match r.tail {
            Some(t) => lines.len().saturating_sub(t as usize),
            None => 0,
        };
        let first = pb::LogsChunk { lines: lines[skip..].to_vec() };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let _ = tx.send(Ok(first)).await;
        if r.follow {
            let api = self.clone();
            tokio::spawn(async move {
                let mut seen = lines.len();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                        _ = tx.closed() => return,
                    }
                    match super::pods::log_lines(&api, &r).await {
                        Ok(now) => {
                            // A rotated log starts over.
                            if now.len() < seen {
                                seen = 0;
                            }
                            if now.len() > seen {
                                let chunk = pb::LogsChunk { lines: now[seen..].to_vec() };
                                seen = now.len();
                                if tx.send(Ok(chunk)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(s) if s.code() == tonic::Code::NotFound => return,
                        Err(_) => {}
                    }
                }
            });
        }
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> Result<Response<pb::ExecResponse>, Status> {
        authorize(&self.store, &req)?;
        Ok(Response::new(super::pods::exec(self, req.into_inner()).await?))
    }

    async fn load_image(&self, req: Request<pb::LoadImageRequest>) -> Result<Response<pb::LoadImageResponse>, Status> {
        authorize(&self.store, &req)?;
        Ok(Response::new(super::pods::load_image(self, req.into_inner().archive).await?))
    }

    async fn top(&self, req: Request<pb::TopRequest>) -> Result<Response<pb::TopResponse>, Status> {
        authorize(&self.store, &req)?;
        Ok(Response::new(super::pods::top(self, req.into_inner()).await?))
    }

    async fn snapshot(&self, req: Request<pb::SnapshotRequest>) -> Result<Response<pb::SnapshotResponse>, Status> {
        authorize(&self.store, &req)?;
        self.node.snapshot().await.map_err(internal)?;
        Ok(Response::new(pb::SnapshotResponse {}))
    }
}
