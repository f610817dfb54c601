//! The gRPC service: admission, then a compare-and-swap proposal through Raft;
//! reads from the local replica (or after a read barrier); watches from the
//! replica's history and live feed.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::json;
use tonic::{Request, Response, Status};

use clusterd_raft::pki::Ca;
use clusterd_raft::storage::Export;
use clusterd_raft::{Command, Compare, Op, RaftNode, StoreReader, Txn};

use super::auth::authorize;
use super::keys;
use super::pb::{self, clusterd_server::Clusterd};
use super::status::status;
use super::tokens::JoinToken;
use crate::objects::admission;
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::{kinds, Kind};
use crate::registry::deletion::{DeleteOptions, Propagation};
use crate::registry::watch::{list_document, From, Selection};
use crate::registry::{Origin, Registry, RegistryError};
use crate::util;

/// How long a cluster call waits for a leader.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// Bytes of keys and values per message of a `SaveSnapshot` stream (far
/// below gRPC's 4 MiB message limit, unless one object is that big).
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// The API service of one node: a door to its registry, and the cluster calls.
#[derive(Clone)]
pub struct Api {
    registry: Registry,
}

impl Api {
    /// Serve the API from this node's registry.
    pub fn new(registry: Registry) -> Self {
        Api { registry }
    }

    /// The local replica.
    pub fn store(&self) -> &StoreReader {
        self.registry.reader()
    }

    /// The Raft member.
    pub fn node(&self) -> &Arc<RaftNode> {
        self.registry.node()
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

fn resolve(kind: &str) -> Result<&'static Kind, Status> {
    Kind::resolve(kind).ok_or_else(|| Status::not_found(format!("the server doesn't have a resource type \"{kind}\"")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

impl Api {
    async fn read_barrier(&self, linearizable: bool) -> Result<(), Status> {
        if linearizable {
            self.node().read_barrier(WRITE_WAIT).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn propose(&self, txn: Txn) -> Result<clusterd_raft::CommandResponse, Status> {
        self.node().propose(Command::Txn(txn), WRITE_WAIT).await.map_err(unavailable)
    }

    fn member_infos(&self) -> Vec<pb::MemberInfo> {
        self.node()
            .members()
            .into_iter()
            .map(|(id, m, voter)| pb::MemberInfo {
                id,
                name: m.name,
                role: if voter { "voter" } else { "learner" }.into(),
                raft_addr: m.raft_addr,
                api_addr: m.api_addr,
                last_applied: None,
                cert_not_after: String::new(),
            })
            .collect()
    }

    /// When each registered node's certificate expires, as the node
    /// published it in its registration, by node name.
    fn cert_expiries(&self) -> std::collections::HashMap<String, String> {
        let Ok((kvs, _)) = self.store().list(keys::MEMBERS) else { return Default::default() };
        kvs.iter()
            .filter_map(|kv| {
                let v: serde_json::Value = serde_json::from_slice(&kv.value).ok()?;
                let not_after = v.get(keys::MEMBER_CERT_NOT_AFTER)?.as_str()?.to_string();
                Some((v.get("name")?.as_str()?.to_string(), not_after))
            })
            .collect()
    }

    /// Create a join token valid for `ttl`.
    pub async fn create_token(&self, ttl: Duration) -> Result<String, Status> {
        let ca = self.ca()?;
        let token = JoinToken::generate(&ca.fingerprint().map_err(internal)?);
        let expiration =
            super::tokens::expiration(chrono::Utc::now(), ttl).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.registry.create(token.secret_object(&expiration)).await.map_err(status)?;
        Ok(token.to_string())
    }

    fn ca(&self) -> Result<Ca, Status> {
        let kv = self
            .store()
            .get(keys::CA)
            .map_err(internal)?
            .ok_or_else(|| Status::internal("the cluster CA is missing"))?;
        serde_json::from_slice(&kv.value).map_err(internal)
    }
}

#[tonic::async_trait]
impl Clusterd for Api {
    async fn create(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(self.store(), &req)?;
        let (_, obj) = admission::parse(&req.get_ref().json).map_err(|e| status(e.into()))?;
        let body = self.registry.create(obj).await.map_err(status)?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(self.store(), &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        self.read_barrier(r.linearizable).await?;
        let obj = self.registry.get(kind, kind.namespace_or_default(&r.namespace), &r.name).map_err(status)?;
        let obj = obj.ok_or_else(|| status(RegistryError::not_found(kind, &r.name)))?;
        Ok(Response::new(pb::ObjectResponse { json: obj.to_string() }))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        authorize(self.store(), &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let labels = LabelSelector::parse(&r.label_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fields = FieldSelector::parse(&r.field_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.read_barrier(r.linearizable).await?;
        let sel = Selection { namespace: Some(r.namespace.clone()), labels, fields };
        let (items, revision) = self.registry.list_selected_bytes(kind, &sel).map_err(status)?;
        let list = list_document(kind, &json!({"resourceVersion": revision.to_string()}), &items);
        let json = String::from_utf8(list).map_err(internal)?;
        Ok(Response::new(pb::ListResponse { json, resource_version: revision }))
    }

    async fn update(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(self.store(), &req)?;
        let (_, obj) = admission::parse(&req.get_ref().json).map_err(|e| status(e.into()))?;
        let body = self.registry.update(obj, Origin::User).await.map_err(status)?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn update_status(&self, req: Request<pb::ObjectRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(self.store(), &req)?;
        let (_, obj) = admission::parse(&req.get_ref().json).map_err(|e| status(e.into()))?;
        let body = self.registry.update_status(obj).await.map_err(status)?;
        Ok(Response::new(pb::ObjectResponse { json: body.to_string() }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::ObjectResponse>, Status> {
        authorize(self.store(), &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let opts = DeleteOptions {
            grace_period_seconds: r.grace_period_seconds,
            propagation: Propagation::parse(&r.propagation_policy).map_err(status)?,
            resource_version: (r.resource_version != 0).then_some(r.resource_version),
            uid: None,
        };
        let last = self.registry.delete(kind, &r.namespace, &r.name, &opts).await.map_err(status)?;
        Ok(Response::new(pb::ObjectResponse { json: last.to_string() }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        authorize(self.store(), &req)?;
        let r = req.into_inner();
        let kind = resolve(&r.kind)?;
        let labels = LabelSelector::parse(&r.label_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fields = FieldSelector::parse(&r.field_selector).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let sel = Selection { namespace: Some(r.namespace.clone()), labels, fields };
        let from = match (r.resource_version, r.send_initial_events) {
            (0, true) => From::Current,
            (0, false) => From::Now,
            (rev, _) => From::After(rev),
        };
        let bookmarks = r.allow_bookmarks.then(|| Duration::from_secs(1));
        let events = self.registry.watch_selected(kind, sel, from, bookmarks).map_err(status)?;
        let stream = events.map(|item| match item {
            Ok(ev) => Ok(pb::WatchEvent {
                r#type: ev.kind.into(),
                json: ev.object.to_string(),
                resource_version: ev.revision,
            }),
            Err(e) => Err(status(e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        authorize(self.store(), &req)?;
        let st = self.node().cluster_status(WRITE_WAIT).await.map_err(unavailable)?;
        let leader = st.leader.and_then(|l| st.members.iter().find(|m| m.id == l)).map(|m| m.member.name.clone());
        let mut expiries = self.cert_expiries();
        let members = st
            .members
            .into_iter()
            .map(|m| pb::MemberInfo {
                id: m.id,
                cert_not_after: expiries.remove(&m.member.name).unwrap_or_default(),
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
        authorize(self.store(), &req)?;
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
        self.read_barrier(true).await?;
        let secret = self
            .store()
            .get(&kinds::SECRET.key("kube-system", &token.secret_name()))
            .map_err(internal)?
            .ok_or_else(|| Status::unauthenticated("invalid join token"))?;
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_slice(&secret.value).map_err(internal)?;
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
        let validity = match r.cert_validity_seconds {
            0 => clusterd_raft::pki::NODE_VALIDITY,
            s => Duration::from_secs(s),
        };
        let id = crate::objects::conventions::issue_node_certificate(
            &ca,
            &r.name,
            &r.raft_addr,
            &r.api_addr,
            validity,
            None,
        )
        .map_err(internal)?;
        let peers = self.node().members().into_iter().map(|(_, m, _)| m.raft_addr).collect();
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
        authorize(self.store(), &req)?;
        let name = req.into_inner().name;
        let (id, _, _) = self
            .node()
            .members()
            .into_iter()
            .find(|(_, m, _)| m.name == name)
            .ok_or_else(|| Status::not_found(format!("no member named \"{name}\"")))?;
        self.node().remove_member(id, WRITE_WAIT).await.map_err(unavailable)?;
        let key = format!("{}{}", keys::MEMBERS, name);
        self.propose(Txn::ops(vec![Op::Delete { key }])).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        authorize(self.store(), &req)?;
        let ttl = match req.get_ref().ttl_seconds {
            0 => Duration::from_secs(24 * 3600),
            s => Duration::from_secs(s),
        };
        Ok(Response::new(pb::CreateTokenResponse { token: Api::create_token(self, ttl).await? }))
    }

    async fn compact(&self, req: Request<pb::CompactRequest>) -> Result<Response<pb::CompactResponse>, Status> {
        authorize(self.store(), &req)?;
        let current = self.store().revision();
        let rev = match req.get_ref().revision {
            0 => current.saturating_sub(1),
            r if r > current => {
                return Err(Status::out_of_range(format!("revision {r} is in the future (current {current})")))
            }
            r => r,
        };
        self.node().propose(Command::Compact(rev), WRITE_WAIT).await.map_err(unavailable)?;
        Ok(Response::new(pb::CompactResponse { compacted: self.store().compacted() }))
    }

    type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogsChunk, Status>> + Send>>;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        authorize(self.store(), &req)?;
        let r = req.into_inner();
        let lines = super::pods::log_lines(self.registry(), &r).await?;
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
                    match super::pods::log_lines(api.registry(), &r).await {
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
        authorize(self.store(), &req)?;
        Ok(Response::new(super::pods::exec(self.registry(), req.into_inner()).await?))
    }

    async fn load_image(&self, req: Request<pb::LoadImageRequest>) -> Result<Response<pb::LoadImageResponse>, Status> {
        authorize(self.store(), &req)?;
        Ok(Response::new(super::pods::load_image(self.registry(), req.into_inner().archive).await?))
    }

    async fn top(&self, req: Request<pb::TopRequest>) -> Result<Response<pb::TopResponse>, Status> {
        authorize(self.store(), &req)?;
        Ok(Response::new(super::pods::top(self.registry(), req.into_inner()).await?))
    }

    type SaveSnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SaveSnapshotChunk, Status>> + Send>>;

    async fn save_snapshot(
        &self,
        req: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        authorize(self.store(), &req)?;
        // Everything committed before the call is in the snapshot.
        self.read_barrier(true).await?;
        let cluster = self.ca()?.fingerprint().map_err(internal)?;
        let node = self.node().member(self.node().id).map(|m| m.name).unwrap_or_default();
        let store = self.store().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut first = Some((cluster, node));
            let sent = store.export(keys::NOT_IN_SNAPSHOTS, SNAPSHOT_CHUNK_BYTES, |item| {
                let chunk = match item {
                    Export::Start { revision, keys } => {
                        let (cluster, node) = first.take().unwrap_or_default();
                        pb::SaveSnapshotChunk { revision, keys, cluster, node, entries: Vec::new() }
                    }
                    Export::Keys(kvs) => pb::SaveSnapshotChunk {
                        entries: kvs
                            .into_iter()
                            .map(|kv| pb::SnapshotEntry {
                                key: kv.key,
                                value: kv.value,
                                create_revision: kv.create_revision,
                                mod_revision: kv.mod_revision,
                            })
                            .collect(),
                        ..Default::default()
                    },
                };
                tx.blocking_send(Ok(chunk)).is_ok()
            });
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(internal(e)));
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn snapshot(&self, req: Request<pb::SnapshotRequest>) -> Result<Response<pb::SnapshotResponse>, Status> {
        authorize(self.store(), &req)?;
        self.node().snapshot().await.map_err(internal)?;
        Ok(Response::new(pb::SnapshotResponse {}))
    }
}
