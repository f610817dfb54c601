//! Serving the API over TLS: the handshake accepts clients with or without a
//! certificate (joiners have none yet); each call then authorizes itself.
//! At most [`MAX_CONNECTIONS`] connections are served at once (more wait in
//! the listen backlog), and a failing `accept` (out of file descriptors) backs
//! off instead of spinning.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use clusterd_raft::pki::{self, LiveIdentity, PkiError};

use super::pb::clusterd_server::ClusterdServer;
use super::service::Api;

/// The largest message the API takes or sends (objects are ≤ 1.5 MiB; lists are larger).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// The first and the longest pause after a failed `accept`.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// A connection that holds one of the server's connection slots while it lives.
struct Slotted<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Slotted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slotted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: Connected> Connected for Slotted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The pause after `failures` failed accepts in a row.
fn accept_pause(failures: u32) -> Duration {
    let (first, max) = ACCEPT_BACKOFF;
    first.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(max)
}

/// How long open connections (watches, log streams) get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(3);

/// Serve `api` on `listener` until `shutdown` resolves: gRPC and the
/// Kubernetes REST API on one TLS port (HTTP/2, and HTTP/1.1 for clients and
/// WebSocket upgrades that need it). Each handshake presents `id`'s
/// certificate of the moment (a renewed one without a restart).
pub async fn serve(
    listener: TcpListener,
    api: Api,
    id: Arc<LiveIdentity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), PkiError> {
    let tls = pki::server_config(id, true, &[b"h2", b"http/1.1"])?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let grpc =
        ClusterdServer::new(api.clone()).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    let grpc = tonic::service::Routes::new(grpc).prepare();
    let app = axum::Router::new()
        .route_service("/clusterd.v1.Clusterd/{method}", grpc)
        .fallback_service(super::rest::router(api));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = &graceful;
    let accept = async move {
        let mut failures = 0;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => {
                    failures = 0;
                    conn
                }
                Err(e) => {
                    failures += 1;
                    let pause = accept_pause(failures);
                    tracing::warn!(error = %e, ?pause, "api: accept failed");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), connections.watcher());
            // Handshakes run on their own so a slow client does not hold up others.
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(stream) => Slotted { inner: stream, _slot: slot },
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "api: TLS handshake failed");
                        return;
                    }
                };
                // The connection's TLS facts reach every request (gRPC's
                // `peer_certs`, the REST API's authentication).
                let info = stream.connect_info();
                let svc = tower::ServiceExt::map_request(app, move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    req
                });
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "api: connection ended");
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::debug!("api: connections still open after the drain time");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_to_a_second() {
        let ms = Duration::from_millis;
        for (failures, pause) in [(1, ms(5)), (2, ms(10)), (5, ms(80)), (8, ms(640)), (9, ms(1000)), (100, ms(1000))] {
            assert_eq!(accept_pause(failures), pause, "{failures}");
        }
    }
}
