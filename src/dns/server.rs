//! The DNS server itself: `hickory-server` listening on one port for UDP and
//! TCP, each question answered from the current [`Names`] snapshot (pure,
//! [`records::answer`]) or forwarded to the host's resolvers.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

use super::forward::Upstream;
use super::names::Names;
use super::records::{self, Answer, Reply};
use super::DnsError;

/// The snapshot queries read; the feed swaps a new one in whole.
#[derive(Clone, Default)]
pub struct SharedNames(Arc<RwLock<Arc<Names>>>);

impl SharedNames {
    /// A handle on `names`.
    pub fn new(names: Names) -> Self {
        SharedNames(Arc::new(RwLock::new(Arc::new(names))))
    }

    /// The current snapshot (the lock is held only to clone the `Arc`).
    pub fn current(&self) -> Arc<Names> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the snapshot.
    pub fn set(&self, names: Names) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(names);
    }
}

/// Answers questions.
struct Handler {
    names: SharedNames,
    upstream: Upstream,
}

/// Send `response`; a failure to send is logged and reported as SERVFAIL.
async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    request: &Request,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "dns: sending a response failed");
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = ResponseCode::ServFail;
            hickory_proto::op::Header { metadata: m, counts: Default::default() }.into()
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let builder = || MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let error = |code| builder().error_msg(&request.metadata, code);
        if request.metadata.op_code != OpCode::Query {
            return send(&mut handle, request, error(ResponseCode::NotImp)).await;
        }
        let Ok(info) = request.request_info() else {
            return send(&mut handle, request, error(ResponseCode::FormErr)).await;
        };
        let qname = info.query.name().to_string();
        let qtype = info.query.query_type();
        let names = self.names.current();
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        match records::answer(&names, &qname, qtype) {
            Answer::Local(Reply { code, answers, authority, additionals }) => {
                metadata.authoritative = true;
                metadata.response_code = code;
                let response = builder().build(metadata, &answers, &authority, None, &additionals);
                send(&mut handle, request, response).await
            }
            Answer::Forward => match self.upstream.ask(request.as_slice()).await {
                Ok(reply) => {
                    metadata.response_code = reply.metadata.response_code;
                    metadata.recursion_available = reply.metadata.recursion_available;
                    metadata.authentic_data = reply.metadata.authentic_data;
                    let response =
                        builder().build(metadata, &reply.answers, &reply.authorities, None, &reply.additionals);
                    send(&mut handle, request, response).await
                }
                Err(e) => {
                    tracing::debug!(error = %e, name = %qname, "dns: forwarding failed");
                    send(&mut handle, request, error(ResponseCode::ServFail)).await
                }
            },
        }
    }
}

/// The listening sockets and their tasks.
pub struct Listening {
    /// The port of both sockets.
    pub port: u16,
    server: Server<Handler>,
}

impl Listening {
    /// Stop accepting questions and wait for the tasks to end.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "dns: shutdown");
        }
    }
}

/// How many ports are tried for the TCP socket to match the UDP one.
const PORT_TRIES: usize = 20;

/// Bind UDP and TCP on one free port of `ip`; a few picks are tried when the
/// TCP port of the UDP pick is taken.
fn bind(ip: IpAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let mut last = None;
    for _ in 0..PORT_TRIES {
        let udp = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(DnsError::Bind)?;
        let port = udp.local_addr().map_err(DnsError::Bind)?.port();
        match std::net::TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(DnsError::Bind(last.unwrap_or_else(|| std::io::Error::other("no free port"))))
}

/// Listen on a free port of `ip` (UDP and TCP) and answer from `names`;
/// call inside a tokio runtime (the sockets' tasks run on it).
pub fn listen(ip: IpAddr, names: SharedNames, upstream: Upstream) -> Result<Listening, DnsError> {
    let (udp, tcp) = bind(ip)?;
    let port = udp.local_addr().map_err(DnsError::Bind)?.port();
    udp.set_nonblocking(true).map_err(DnsError::Bind)?;
    tcp.set_nonblocking(true).map_err(DnsError::Bind)?;
    let udp = tokio::net::UdpSocket::from_std(udp).map_err(DnsError::Bind)?;
    let tcp = tokio::net::TcpListener::from_std(tcp).map_err(DnsError::Bind)?;
    let mut server = Server::new(Handler { names, upstream });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64);
    Ok(Listening { port, server })
}
