//! Names outside the cluster go to the host's resolvers, as CoreDNS's
//! `forward . /etc/resolv.conf` does: the client's question is sent as it
//! came (under a fresh id) over UDP, each server in turn until one answers
//! within the timeout; a truncated answer is asked again over TCP.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The host names no nameserver.
    #[error("the host's resolv.conf names no nameserver")]
    NoServers,
    /// Every server failed; the last failure.
    #[error("upstream {server}: {reason}")]
    Failed {
        /// The last server asked.
        server: SocketAddr,
        /// What went wrong with it.
        reason: String,
    },
}

/// The host's resolvers.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The servers, in the order they are tried.
    pub servers: Vec<SocketAddr>,
    /// How long one server has to answer.
    pub timeout: Duration,
}

impl Upstream {
    /// Ask the upstream servers `query` (a whole DNS message); returns their answer.
    pub async fn ask(&self, query: &[u8]) -> Result<Message, ForwardError> {
        let mut last = Err(ForwardError::NoServers);
        for &server in &self.servers {
            match tokio::time::timeout(self.timeout, ask_one(server, query)).await {
                Ok(Ok(m)) => return Ok(m),
                Ok(Err(reason)) => last = Err(ForwardError::Failed { server, reason }),
                Err(_) => last = Err(ForwardError::Failed { server, reason: "timed out".into() }),
            }
        }
        last
    }
}

/// One server over UDP, then over TCP if the answer was truncated.
async fn ask_one(server: SocketAddr, query: &[u8]) -> Result<Message, String> {
    if query.len() < 12 {
        return Err("query too short".into());
    }
    let id: u16 = rand::random();
    let mut q = query.to_vec();
    q[..2].copy_from_slice(&id.to_be_bytes());
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&q).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        match Message::from_vec(&buf[..n]) {
            // Stray datagrams (a late answer to another id) are skipped.
            Ok(m) if m.metadata.id == id => break m,
            _ => continue,
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut tcp = TcpStream::connect(server).await.map_err(|e| e.to_string())?;
    let len = u16::try_from(q.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let n = tcp.read_u16().await.map_err(|e| e.to_string())? as usize;
    let mut body = vec![0u8; n];
    tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    let m = Message::from_vec(&body).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("answer to another question".into());
    }
    Ok(m)
}
