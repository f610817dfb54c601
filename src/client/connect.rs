//! Connecting to the API: TLS with the cluster CA (or a pinned CA fingerprint
//! when joining), a client certificate or bearer token, and fail-over across
//! the servers the client knows.

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
use crate::cluster::config::AdminConfig;

/// The API could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No server in the list answered.
    #[error("could not reach any API server ({tried}): {last}")]
    Unreachable { tried: String, last: String },
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
pub async fn channel(addr: &str, tls: Arc<rustls::ClientConfig>) -> Result<Channel, String> {
    let connector = TlsConnector::from(tls);
    let target = addr.to_string();
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
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
            msg
        })
}

fn client(channel: Channel, token: &str) -> ApiClient {
    let bearer = Bearer((!token.is_empty()).then(|| format!("Bearer {token}").parse().ok()).flatten());
    ClusterdClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Connect with an admin config to the first server of `servers` that answers.
pub async fn connect(config: &AdminConfig, servers: &[String]) -> Result<(ApiClient, String), ConnectError> {
    let id = config.identity();
    let tls = Arc::new(pki::client_config(&config.certificate_authority, id.as_ref(), &[b"h2"])?);
    let token = if id.is_some() { "" } else { config.token.as_str() };
    let mut last = String::from("no servers configured");
    for server in servers {
        match channel(server, tls.clone()).await {
            Ok(ch) => return Ok((client(ch, token), server.clone())),
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    Err(ConnectError::Unreachable { tried: servers.join(", "), last })
}

/// Connect to a server knowing only the CA fingerprint (a joining node).
pub async fn connect_pinned(server: &str, ca_fingerprint: &str) -> Result<ApiClient, ConnectError> {
    let tls = Arc::new(pki::pinned_client_config(ca_fingerprint, &[b"h2"])?);
    let ch =
        channel(server, tls).await.map_err(|last| ConnectError::Unreachable { tried: server.to_string(), last })?;
    Ok(client(ch, ""))
}
