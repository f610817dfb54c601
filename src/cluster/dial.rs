//! One TLS channel to one API server. A joining node dials with nothing but
//! the CA fingerprint of its join token; the client dials with the admin
//! config (`client::connect` picks the server). It lives here, below the
//! client, because both the node life cycle and the client need it and the
//! client may import the cluster layer but never the other way round.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use clusterd_raft::pki::{self, NODE_SERVER_NAME};

use crate::api::pb::clusterd_client::ClusterdClient;
use crate::api::server::MAX_MESSAGE;

/// The API could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No server in the list answered.
    #[error("could not reach any API server ({tried}): {last}")]
    Unreachable {
        /// The servers tried, comma-separated.
        tried: String,
        /// Why the last one failed.
        last: String,
    },
    /// The TLS configuration could not be made.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// Adds the bearer token to every call, when there is one.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connected API client.
pub type ApiClient = ClusterdClient<InterceptedService<Channel, Bearer>>;

/// Open a channel to `addr` over TLS with `tls`.
pub async fn channel(addr: &str, tls: Arc<rustls::ClientConfig>) -> Result<Channel, ConnectError> {
    let unreachable = |last: String| ConnectError::Unreachable { tried: addr.to_string(), last };
    let connector = TlsConnector::from(tls);
    let target = addr.to_string();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(NODE_SERVER_NAME).expect("valid server name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            unreachable(msg)
        })
}

/// An API client over `channel`, sending `token` as a bearer token unless it is empty.
pub fn client(channel: Channel, token: &str) -> ApiClient {
    let bearer = Bearer((!token.is_empty()).then(|| format!("Bearer {token}").parse().ok()).flatten());
    ClusterdClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Connect to a server knowing only the CA fingerprint (a joining node).
pub async fn connect_pinned(server: &str, ca_fingerprint: &str) -> Result<ApiClient, ConnectError> {
    let tls = Arc::new(pki::pinned_client_config(ca_fingerprint, &[b"h2"])?);
    Ok(client(channel(server, tls).await?, ""))
}
