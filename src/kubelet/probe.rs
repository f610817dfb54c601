//! Liveness, readiness and startup probes: exec, httpGet and tcpSocket handlers,
//! and the counting of successes and failures against the thresholds.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe as ProbeSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use clusterd_runtime::Runtime;

/// A probe's settings, with Kubernetes' defaults.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The probe as in the spec (its handler: exec, httpGet or tcpSocket).
    pub handler: ProbeSpec,
    /// Delay after the container starts.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Failures in a row that count.
    pub failure_threshold: u32,
    /// Successes in a row that count (after a failure).
    pub success_threshold: u32,
}

impl Probe {
    /// A container's probe (`livenessProbe`…), with the defaults filled in.
    pub fn of(p: &ProbeSpec) -> Probe {
        let n = |v: Option<i32>, d: u64| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(d);
        Probe {
            handler: p.clone(),
            initial_delay: Duration::from_secs(n(p.initial_delay_seconds, 0)),
            period: Duration::from_secs(n(p.period_seconds, 10).max(1)),
            timeout: Duration::from_secs(n(p.timeout_seconds, 1).max(1)),
            failure_threshold: n(p.failure_threshold, 3).max(1) as u32,
            success_threshold: n(p.success_threshold, 1).max(1) as u32,
        }
    }
}

/// The running tally of one probe on one container instance.
#[derive(Clone, Debug)]
pub struct Tally {
    /// When the next probe is due.
    pub due: Instant,
    /// Failures in a row.
    pub failures: u32,
    /// Successes in a row.
    pub successes: u32,
}

impl Tally {
    /// A tally for a container that started at `started`.
    pub fn new(probe: &Probe, started: Instant) -> Tally {
        Tally { due: started + probe.initial_delay, failures: 0, successes: 0 }
    }

    /// Count one result; returns the verdict when a threshold was just crossed:
    /// `Some(true)` healthy, `Some(false)` failed.
    pub fn record(&mut self, probe: &Probe, ok: bool, now: Instant) -> Option<bool> {
        self.due = now + probe.period;
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes == probe.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures == probe.failure_threshold).then_some(false)
        }
    }
}

fn port_of(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => {
            container.ports.iter().flatten().find_map(|p| {
                (p.name.as_deref() == Some(name.as_str())).then(|| u16::try_from(p.container_port).ok())?
            })
        }
    }
}

/// A failed probe, with the message Kubernetes would show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeFailure(pub String);

impl From<String> for ProbeFailure {
    fn from(message: String) -> Self {
        ProbeFailure(message)
    }
}

impl From<&str> for ProbeFailure {
    fn from(message: &str) -> Self {
        ProbeFailure(message.to_string())
    }
}

/// Run a probe once against a container (`id`, in the pod at `pod_ip`).
/// Ok on success; Err with the message Kubernetes would show.
pub async fn run(
    probe: &Probe,
    container: &Container,
    pod_ip: &str,
    id: &str,
    runtime: &Arc<Runtime>,
) -> Result<(), ProbeFailure> {
    let h = &probe.handler;
    if let Some(exec) = &h.exec {
        let cmd: Vec<String> = exec.command.clone().unwrap_or_default();
        let rt = runtime.clone();
        let id = id.to_string();
        let out = tokio::task::spawn_blocking(move || rt.exec(&id, &cmd)).await.map_err(|e| e.to_string())?;
        return match out {
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => Err(format!(
                "command failed with exit code {}: {}{}",
                r.exit_code,
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            )
            .trim()
            .into()),
            Err(e) => Err(e.to_string().into()),
        };
    }
    if let Some(http) = &h.http_get {
        let port = port_of(&http.port, container).ok_or("httpGet: no port")?;
        let host = http.host.as_deref().unwrap_or(pod_ip);
        let path = http.path.as_deref().unwrap_or("/");
        let addr = format!("{host}:{port}");
        let get = async {
            let mut s =
                tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
            for hdr in http.http_headers.iter().flatten() {
                req.push_str(&format!("{}: {}\r\n", hdr.name, hdr.value));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 1024];
            let mut got = 0;
            while got < 12 {
                let n = s.read(&mut buf[got..]).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let line = String::from_utf8_lossy(&buf[..got]).lines().next().unwrap_or("").to_string();
            let code: u16 =
                line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("malformed HTTP response")?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(probe.timeout, get)
            .await
            .unwrap_or_else(|_| Err(format!("Get \"http://{addr}{path}\": context deadline exceeded")))
            .map_err(ProbeFailure);
    }
    if let Some(tcp) = &h.tcp_socket {
        let port = port_of(&tcp.port, container).ok_or("tcpSocket: no port")?;
        let host = tcp.host.as_deref().unwrap_or(pod_ip);
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(probe.timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}").into()),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout").into()),
        };
    }
    Err("the probe has no exec, httpGet or tcpSocket handler".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds_count_in_a_row() {
        let spec = serde_json::from_value(json!({"exec": {}, "failureThreshold": 2, "periodSeconds": 5})).unwrap();
        let p = Probe::of(&spec);
        let t0 = Instant::now();
        let mut t = Tally::new(&p, t0);
        assert_eq!(t.record(&p, false, t0), None);
        assert_eq!(t.record(&p, true, t0), Some(true));
        assert_eq!(t.record(&p, false, t0), None);
        assert_eq!(t.record(&p, false, t0), Some(false));
        assert_eq!(t.due, t0 + Duration::from_secs(5));
    }

    #[test]
    fn defaults_and_out_of_range_settings() {
        let p = Probe::of(&serde_json::from_value(json!({"tcpSocket": {"port": 80}, "periodSeconds": -4})).unwrap());
        let got = (p.initial_delay, p.period, p.timeout, p.failure_threshold, p.success_threshold);
        assert_eq!(got, (Duration::ZERO, Duration::from_secs(10), Duration::from_secs(1), 3, 1));
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
        assert_eq!(port_of(&IntOrString::String("http".into()), &c), Some(8080));
        assert_eq!(port_of(&IntOrString::Int(81), &c), Some(81));
        assert_eq!(port_of(&IntOrString::String("grpc".into()), &c), None);
    }
}
