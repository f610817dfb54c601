//! Serving the API over TLS: the handshake accepts clients with or without a
//! certificate (joiners have none yet); each call then authorizes itself.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use clusterd_raft::pki::{self, Identity, PkiError};

use super::pb::clusterd_server::ClusterdServer;
use super::service::Api;

/// The largest message the API takes or sends (objects are ≤ 1.5 MiB; lists are larger).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Serve `api` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    ca_pem: &str,
    id: &Identity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), PkiError> {
    let tls = pki::server_config(ca_pem, id, true, &[b"h2"])?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let (tx, rx) = tokio::sync::mpsc::channel(128);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            // Handshakes run on their own so a slow client does not hold up others.
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "api: TLS handshake failed"),
                }
            });
        }
    });
    let svc = ClusterdServer::new(api).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await;
    accept.abort();
    if let Err(e) = result {
        tracing::error!(error = %e, "api server stopped");
    }
    Ok(())
}
