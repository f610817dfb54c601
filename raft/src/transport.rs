//! The node transport: one QUIC endpoint per node, mutual TLS with the cluster CA,
//! one bidirectional stream per request carrying one length-prefixed bincode frame
//! each way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use crate::codec::{decode, encode, CodecError};
use crate::pki::{self, LiveIdentity, PkiError};
use crate::rpc::{Request, Response};

const ALPN: &[u8] = b"clusterd-raft/1";
/// The largest frame taken (a whole snapshot travels in one).
pub(crate) const MAX_FRAME: usize = 512 * 1024 * 1024;
/// What a frame's buffer starts with before its bytes arrive.
const FRAME_CHUNK: usize = 64 * 1024;

/// A request over the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (no connection could be made).
    #[error("unreachable {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The connection broke during the request; it may or may not have been handled.
    #[error("connection to {addr} failed: {reason}")]
    Broken { addr: String, reason: String },
    /// The request did not finish in time.
    #[error("request to {0} timed out")]
    Timeout(String),
    /// A frame did not encode or decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The endpoint could not be set up.
    #[error("endpoint: {0}")]
    Setup(String),
    /// TLS configuration.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// Serves transport requests.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response> + Send;
}

/// A node's QUIC endpoint, used both to serve and to call peers.
pub struct Transport {
    endpoint: quinn::Endpoint,
    /// One connection slot per peer: connecting to a dead peer (until the
    /// caller's timeout) holds only that peer's slot, never the others'.
    conns: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<quinn::Connection>>>>>,
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    t.max_idle_timeout(Some(Duration::from_secs(3).try_into().expect("idle timeout fits")));
    t.max_concurrent_bidi_streams(4096u32.into());
    Arc::new(t)
}

impl Transport {
    /// Bind the endpoint on `addr` with this node's identity; each new
    /// connection, served or made, presents its certificate of the moment.
    pub fn bind(addr: SocketAddr, id: Arc<LiveIdentity>) -> Result<Transport, TransportError> {
        let server_tls = pki::server_config(id.clone(), false, &[ALPN])?;
        let quic_server = QuicServerConfig::try_from(server_tls).map_err(|e| TransportError::Setup(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server.transport_config(transport_config());
        let client_tls = pki::node_client_config(id, &[ALPN])?;
        let quic_client = QuicClientConfig::try_from(client_tls).map_err(|e| TransportError::Setup(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
        client.transport_config(transport_config());
        let mut endpoint =
            quinn::Endpoint::server(server, addr).map_err(|e| TransportError::Setup(format!("bind {addr}: {e}")))?;
        endpoint.set_default_client_config(client);
        Ok(Transport { endpoint, conns: std::sync::Mutex::new(HashMap::new()) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serve incoming requests with `handler` until the endpoint closes.
    pub async fn serve<H: Handler>(self: Arc<Self>, handler: Arc<H>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "transport: handshake failed");
                        return;
                    }
                };
                if !peer_is_node(&conn) {
                    tracing::warn!(remote = %conn.remote_address(), "transport: refused a peer whose certificate is not a node's");
                    conn.close(NOT_A_NODE.into(), b"not a node certificate");
                    return;
                }
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let req: Request = match read_frame(&mut recv).await {
                            Ok(bytes) => match decode(&bytes) {
                                Ok(r) => r,
                                Err(e) => {
                                    tracing::warn!(error = %e, "transport: bad request frame");
                                    return;
                                }
                            },
                            Err(_) => return,
                        };
                        let resp = handler.handle(req).await;
                        if let Ok(bytes) = encode(&resp) {
                            let _ = write_frame(&mut send, &bytes).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    }

    /// Close the endpoint: no more requests are served or sent.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"shutdown");
    }

    async fn connection(&self, addr: &str) -> Result<quinn::Connection, TransportError> {
        let slot = self.conns.lock().expect("connection table").entry(addr.to_string()).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let unreachable = |reason: String| TransportError::Unreachable { addr: addr.to_string(), reason };
        let sock = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("no address".into()))?;
        let connecting = self.endpoint.connect(sock, pki::NODE_SERVER_NAME).map_err(|e| unreachable(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(2), connecting)
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Send one request to the node at `addr` and wait for its answer.
    pub async fn call(&self, addr: &str, req: &Request, timeout: Duration) -> Result<Response, TransportError> {
        let bytes = encode(req)?;
        let fut = async {
            let conn = self.connection(addr).await?;
            let broken = |reason: String| TransportError::Broken { addr: addr.to_string(), reason };
            let (mut send, mut recv) = match conn.open_bi().await {
                Ok(s) => s,
                Err(e) => {
                    self.conns.lock().expect("connection table").remove(addr);
                    return Err(TransportError::Unreachable { addr: addr.to_string(), reason: e.to_string() });
                }
            };
            write_frame(&mut send, &bytes).await.map_err(|e| broken(e.to_string()))?;
            let _ = send.finish();
            let answer = read_frame(&mut recv).await.map_err(|e| broken(e.to_string()))?;
            Ok(decode::<Response>(&answer)?)
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| TransportError::Timeout(addr.to_string()))?
    }
}

/// The close code of a connection whose peer presented no node certificate.
const NOT_A_NODE: u32 = 2;

/// Whether the peer of `conn` presented a node certificate (mutual TLS has
/// already checked that the cluster CA signed it).
fn peer_is_node(conn: &quinn::Connection) -> bool {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|c| pki::is_node_certificate(c)))
        .unwrap_or(false)
}

async fn write_frame(send: &mut quinn::SendStream, bytes: &[u8]) -> std::io::Result<()> {
    send.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    send.write_all(bytes).await?;
    Ok(())
}

/// Read one frame: a big-endian `u32` length, then that many bytes. The
/// buffer grows as the bytes arrive: a header alone (a peer may send 4096
/// streams at once) claims no memory, and one above [`MAX_FRAME`] is refused.
pub(crate) async fn read_frame<R: tokio::io::AsyncRead + Unpin>(recv: &mut R) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes is too large")));
    }
    let mut buf = Vec::with_capacity(len.min(FRAME_CHUNK));
    recv.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    /// Answers every request with the same applied revision.
    struct Answer;

    impl Handler for Answer {
        async fn handle(&self, _req: Request) -> Response {
            Response::Applied(7)
        }
    }

    fn bound(ca: &Ca, id: &pki::Identity) -> Arc<Transport> {
        let live = LiveIdentity::new(ca.cert_pem(), id).unwrap();
        Arc::new(Transport::bind("127.0.0.1:0".parse().unwrap(), live).unwrap())
    }

    #[tokio::test]
    async fn the_raft_port_answers_nodes_and_refuses_a_users_client_certificate() {
        pki::install_default_provider();
        let ca = Ca::generate("t").unwrap();
        let day = Duration::from_secs(86_400);
        let server = bound(&ca, &ca.issue("n1", &["127.0.0.1".into()], day).unwrap());
        let addr = server.local_addr().unwrap().to_string();
        tokio::spawn(server.clone().serve(Arc::new(Answer)));
        let node = bound(&ca, &ca.issue("n2", &["127.0.0.1".into()], day).unwrap());
        let answer = node.call(&addr, &Request::Applied, Duration::from_secs(5)).await;
        assert!(matches!(answer, Ok(Response::Applied(7))), "a node is answered: {answer:?}");
        // The admin's certificate: signed by the same CA, but a user's.
        let admin = bound(&ca, &ca.issue_client("admin", "system:masters", day).unwrap());
        let answer = admin.call(&addr, &Request::Applied, Duration::from_secs(5)).await;
        assert!(answer.is_err(), "a user's client certificate is refused: {answer:?}");
        let (node_der, admin_der) = (
            pki::certs(&ca.issue("n3", &[], day).unwrap().cert_pem).unwrap(),
            pki::certs(&ca.issue_client("admin", "", day).unwrap().cert_pem).unwrap(),
        );
        assert!(pki::is_node_certificate(&node_der[0]));
        assert!(!pki::is_node_certificate(&admin_der[0]));
        assert!(!pki::is_node_certificate(b"not a certificate"));
    }
}
