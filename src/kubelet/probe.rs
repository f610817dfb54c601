//! Liveness, readiness and startup probes: exec, httpGet and tcpSocket handlers,
//! and the counting of successes and failures against the thresholds.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use clusterd_runtime::Runtime;

/// A probe's settings, with Kubernetes' defaults.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The handler, as in the spec.
    pub handler: Value,
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
    /// The probe `field` (`livenessProbe`…) of a container, if set.
    pub fn of(container: &Value, field: &str) -> Option<Probe> {
        let p = container.get(field)?;
        let n = |f: &str, d: u64| p.get(f).and_then(Value::as_u64).unwrap_or(d);
        Some(Probe {
            handler: p.clone(),
            initial_delay: Duration::from_secs(n("initialDelaySeconds", 0)),
            period: Duration::from_secs(n("periodSeconds", 10).max(1)),
            timeout: Duration::from_secs(n("timeoutSeconds", 1).max(1)),
            failure_threshold: n("failureThreshold", 3).max(1) as u32,
            success_threshold: n("successThreshold", 1).max(1) as u32,
        })
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

fn port_of(handler: &Value, container: &Value) -> Option<u16> {
    match handler.get("port")? {
        Value::Number(n) => n.as_u64().map(|p| p as u16),
        Value::String(name) => container.get("ports")?.as_array()?.iter().find_map(|p| {
            (p.get("name")?.as_str()? == name).then(|| p.get("containerPort")?.as_u64().map(|n| n as u16))?
        }),
        _ => None,
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
    container: &Value,
    pod_ip: &str,
    id: &str,
    runtime: &Arc<Runtime>,
) -> Result<(), ProbeFailure> {
    let h = &probe.handler;
    if let Some(exec) = h.get("exec") {
        let cmd: Vec<String> = exec
            .get("command")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
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
    if let Some(http) = h.get("httpGet") {
        let port = port_of(http, container).ok_or("httpGet: no port")?;
        let host = http.get("host").and_then(Value::as_str).unwrap_or(pod_ip);
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        let addr = format!("{host}:{port}");
        let get = async {
            let mut s =
                tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
            for hdr in http.get("httpHeaders").and_then(Value::as_array).into_iter().flatten() {
                let f = |n: &str| hdr.get(n).and_then(Value::as_str).unwrap_or("");
                req.push_str(&format!("{}: {}\r\n", f("name"), f("value")));
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
    if let Some(tcp) = h.get("tcpSocket") {
        let port = port_of(tcp, container).ok_or("tcpSocket: no port")?;
        let host = tcp.get("host").and_then(Value::as_str).unwrap_or(pod_ip);
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
        let p = Probe::of(
            &json!({"livenessProbe": {"exec": {}, "failureThreshold": 2, "periodSeconds": 5}}),
            "livenessProbe",
        )
        .unwrap();
        let t0 = Instant::now();
        let mut t = Tally::new(&p, t0);
        assert_eq!(t.record(&p, false, t0), None);
        assert_eq!(t.record(&p, true, t0), Some(true));
        assert_eq!(t.record(&p, false, t0), None);
        assert_eq!(t.record(&p, false, t0), Some(false));
        assert_eq!(t.due, t0 + Duration::from_secs(5));
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}]});
        assert_eq!(port_of(&json!({"port": "http"}), &c), Some(8080));
        assert_eq!(port_of(&json!({"port": 81}), &c), Some(81));
    }
}
