//! `pods/exec` over WebSocket, as kubectl and the client libraries speak it:
//! the Kubernetes channel protocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
//! `channel.k8s.io`), binary frames `[channel][data]`, and the outcome as a
//! `Status` on the error channel.
//!
//! A command runs to its end on the pod's node and answers with its whole
//! output (the node transport is request/answer), so stdin is gathered first:
//! it ends with v5's close signal for channel 0, which only v5 has — stdin
//! over older protocols, and a TTY with stdin (an interactive shell), are
//! refused with a clear message.

use std::future::Future;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

use super::logs::{parse_bool, query_pairs};
use super::status::Failure;
use crate::api::pb;
use crate::api::pods;
use crate::objects::pod::PodFacts;
use crate::registry::Registry;

/// Channel numbers of the protocols.
pub const STDIN: u8 = 0;
/// Standard output.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;
/// Errors and the final `Status`.
pub const ERROR: u8 = 3;
/// Terminal size changes (JSON `{"Width","Height"}`), ignored here.
pub const RESIZE: u8 = 4;
/// v5: `[255, channel]` says the sender closed that channel.
pub const CLOSE: u8 = 255;

/// The largest data frame sent (kubelet's streams use 32 KiB buffers too).
const FRAME_DATA: usize = 32 * 1024;

/// The most stdin gathered for one command (it travels to the node whole).
const STDIN_MAX: usize = 16 << 20;

/// A channel protocol, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Close signals per channel.
    V5,
    /// `Status` JSON on the error channel.
    V4,
    /// The first: the error channel carries plain text.
    V1,
}

impl Protocol {
    /// Every protocol served, in order of preference.
    pub const ALL: [Protocol; 3] = [Protocol::V5, Protocol::V4, Protocol::V1];

    /// Its `Sec-WebSocket-Protocol` name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V1 => "channel.k8s.io",
        }
    }

    fn from_header(v: Option<&HeaderValue>) -> Option<Protocol> {
        let v = v?.to_str().ok()?;
        Protocol::ALL.into_iter().find(|p| p.name() == v)
    }
}

/// The `PodExecOptions` of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Command and arguments (`command` repeated).
    pub command: Vec<String>,
    /// The container ("" = the pod's first).
    pub container: String,
    /// The client sends standard input.
    pub stdin: bool,
    /// The client wants standard output.
    pub stdout: bool,
    /// The client wants standard error.
    pub stderr: bool,
    /// The client asked for a terminal (standard error then joins standard output).
    pub tty: bool,
}

impl ExecOptions {
    /// The options of a `pods/exec` query.
    pub fn parse(query: &str) -> Result<Self, Failure> {
        let mut o = ExecOptions::default();
        for (k, v) in query_pairs(query)? {
            match k.as_str() {
                "command" => o.command.push(v),
                "container" => o.container = v,
                "stdin" => o.stdin = parse_bool(&k, &v)?,
                "stdout" => o.stdout = parse_bool(&k, &v)?,
                "stderr" => o.stderr = parse_bool(&k, &v)?,
                "tty" => o.tty = parse_bool(&k, &v)?,
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err(Failure::bad_request("you must specify at least one command for the container"));
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(Failure::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        if o.tty && o.stdin {
            return Err(Failure::bad_request(
                "clusterd runs exec commands to their end, without a terminal: an interactive session \
                 (stdin with tty, `kubectl exec -it`) is not supported; use `-i` without `-t` to send input",
            ));
        }
        Ok(o)
    }

    /// Why this session cannot run over `p`, if it cannot.
    fn refused_over(&self, p: Protocol) -> Option<String> {
        (self.stdin && p != Protocol::V5).then(|| {
            format!(
                "stdin needs the v5.channel.k8s.io protocol (its close signal ends the input); {} has no end of input",
                p.name()
            )
        })
    }
}

/// A data frame: `[channel][data]`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(channel);
    f.extend_from_slice(data);
    f
}

/// `data` as frames of at most `FRAME_DATA` bytes (none for no data).
pub fn frames(channel: u8, data: &[u8]) -> Vec<Vec<u8>> {
    data.chunks(FRAME_DATA).map(|c| frame(channel, c)).collect()
}

/// A frame from the client, as the session reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Input for the command.
    Stdin(Vec<u8>),
    /// v5: the client closed a channel.
    Closed(u8),
    /// Anything else (resize, empty frames, unknown channels).
    Ignored,
}

/// Read one client frame (text frames carry the same bytes, as the Python
/// client may send them).
pub fn client_frame(p: Protocol, data: &[u8]) -> ClientFrame {
    match data {
        [CLOSE, ch, ..] if p == Protocol::V5 => ClientFrame::Closed(*ch),
        [STDIN, rest @ ..] if !rest.is_empty() => ClientFrame::Stdin(rest.to_vec()),
        _ => ClientFrame::Ignored,
    }
}

/// The outcome the error channel reports: `Status` JSON from v4 on (`None`
/// for a v1 success, which says nothing).
pub fn outcome(p: Protocol, result: &Result<i32, Failure>) -> Option<Vec<u8>> {
    let status: Value = match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(f) => f.to_status(),
    };
    match p {
        Protocol::V5 | Protocol::V4 => Some(status.to_string().into_bytes()),
        Protocol::V1 => match result {
            Ok(0) => None,
            _ => Some(status["message"].as_str().unwrap_or_default().as_bytes().to_vec()),
        },
    }
}

/// `GET /api/v1/namespaces/{namespace}/pods/{pod}/exec` (a WebSocket upgrade).
pub async fn exec(registry: &Registry, namespace: &str, pod: &str, query: &str, ws: WebSocketUpgrade) -> Response {
    let (opts, target) = match prepare(registry, namespace, pod, query) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    let registry = registry.clone();
    let command = opts.command.clone();
    serve(ws, opts, move |stdin| async move {
        pods::exec_in(&registry, &target, command, stdin).await.map_err(Failure::from)
    })
}

/// `pods/exec` whether or not the request is a WebSocket upgrade: kubectl
/// retries a refused WebSocket handshake over SPDY (a `POST`), and that
/// retry should meet the same refusal (`pods "x" not found`, …) rather than
/// a bare one about the handshake.
pub async fn exec_any(
    registry: &Registry,
    namespace: &str,
    pod: &str,
    query: &str,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => exec(registry, namespace, pod, query, ws).await,
        Err(rejected) => match prepare(registry, namespace, pod, query) {
            Err(f) => f.into_response(),
            Ok(_) => Failure::bad_request(format!(
                "pods/exec is served over WebSocket ({}), not SPDY: {rejected}",
                Protocol::ALL.map(Protocol::name).join(", ")
            ))
            .into_response(),
        },
    }
}

/// What can be refused before the upgrade, refused as a plain answer: bad
/// options, a missing pod or container, a completed pod.
fn prepare(
    registry: &Registry,
    namespace: &str,
    pod: &str,
    query: &str,
) -> Result<(ExecOptions, pods::Target), Failure> {
    let opts = ExecOptions::parse(query)?;
    let target = pods::target(registry, namespace, pod, &opts.container)?;
    if PodFacts::finished(&target.pod) {
        return Err(Failure::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {}",
            PodFacts::phase(&target.pod)
        )));
    }
    Ok((opts, target))
}

/// Upgrade to a channel protocol session that runs `run` (given the gathered
/// stdin when the client sends some) and reports its outcome.
pub fn serve<R, F>(ws: WebSocketUpgrade, opts: ExecOptions, run: R) -> Response
where
    R: FnOnce(Option<Vec<u8>>) -> F + Send + 'static,
    F: Future<Output = Result<pb::ExecResponse, Failure>> + Send + 'static,
{
    let offered = ws.requested_protocols().count() > 0;
    let ws = ws.protocols(Protocol::ALL.map(Protocol::name));
    let protocol = match Protocol::from_header(ws.selected_protocol()) {
        Some(p) => p,
        // A client naming no protocol speaks the first.
        None if !offered => Protocol::V1,
        None => {
            let names = Protocol::ALL.map(Protocol::name).join(", ");
            return Failure::bad_request(format!(
                "none of the offered subprotocols is supported; clusterd speaks {names}"
            ))
            .into_response();
        }
    };
    ws.on_upgrade(move |socket| session(socket, protocol, opts, run))
}

async fn session<R, F>(socket: WebSocket, p: Protocol, opts: ExecOptions, run: R)
where
    R: FnOnce(Option<Vec<u8>>) -> F + Send + 'static,
    F: Future<Output = Result<pb::ExecResponse, Failure>> + Send + 'static,
{
    let (mut tx, mut rx) = socket.split();
    let mut result: Result<i32, Failure> = Ok(0);
    let mut input: Option<Vec<u8>> = None;
    if let Some(why) = opts.refused_over(p) {
        result = Err(Failure::bad_request(why));
    } else if opts.stdin {
        // Gather stdin until the client closes it (or leaves: then nothing runs).
        let mut data = Vec::new();
        loop {
            let bytes = match rx.next().await {
                Some(Ok(Message::Binary(b))) => b.to_vec(),
                Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            };
            match client_frame(p, &bytes) {
                ClientFrame::Stdin(d) => data.extend_from_slice(&d),
                ClientFrame::Closed(STDIN) => break,
                _ => {}
            }
            if data.len() > STDIN_MAX {
                result = Err(Failure::new(
                    413,
                    "RequestEntityTooLarge",
                    format!("stdin is larger than clusterd takes for one command ({STDIN_MAX} bytes)"),
                ));
                break;
            }
        }
        input = Some(data);
    }
    // The client's frames are read on while the command runs: pings are
    // answered, and its close is seen.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    if result.is_ok() {
        result = match run(input).await {
            Ok(out) => {
                let mut msgs = Vec::new();
                if opts.stdout {
                    msgs.extend(frames(STDOUT, &out.stdout));
                }
                // A terminal has one output: standard error joins standard output.
                let (err_channel, err_wanted) = if opts.tty { (STDOUT, opts.stdout) } else { (STDERR, opts.stderr) };
                if err_wanted {
                    msgs.extend(frames(err_channel, &out.stderr));
                }
                for m in msgs {
                    if tx.send(Message::Binary(m.into())).await.is_err() {
                        reader.abort();
                        return;
                    }
                }
                Ok(out.exit_code)
            }
            Err(f) => Err(f),
        };
    }
    if let Some(status) = outcome(p, &result) {
        let _ = tx.send(Message::Binary(frame(ERROR, &status).into())).await;
    }
    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    // The client answers the close; then the connection ends.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_as_kubernetes() {
        let o = ExecOptions::parse("command=sh&command=-c&command=echo%20hi&container=c&stdout=true&stderr=1").unwrap();
        assert_eq!(
            o,
            ExecOptions {
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
                container: "c".into(),
                stdout: true,
                stderr: true,
                ..Default::default()
            }
        );
        let refused = [
            ("stdout=true", "you must specify at least one command for the container"),
            ("command=ls", "you must specify at least 1 of stdin, stdout, stderr"),
            ("command=ls&stdout=yes", "stdout: invalid boolean value \"yes\""),
        ];
        for (q, message) in refused {
            let f = ExecOptions::parse(q).unwrap_err();
            assert_eq!((f.code, f.message.as_str()), (400, message), "{q}");
        }
        let f = ExecOptions::parse("command=sh&stdin=true&tty=true&stdout=true").unwrap_err();
        assert!(f.message.contains("interactive session"), "{}", f.message);
        // A terminal without input is a plain run.
        assert!(ExecOptions::parse("command=ls&stdout=true&tty=true").unwrap().tty);
    }

    #[test]
    fn stdin_needs_v5() {
        let o = ExecOptions { command: vec!["cat".into()], stdin: true, stdout: true, ..Default::default() };
        assert_eq!(o.refused_over(Protocol::V5), None);
        assert!(o.refused_over(Protocol::V4).unwrap().contains("v5.channel.k8s.io"));
        let no_input = ExecOptions { stdin: false, ..o };
        assert_eq!(no_input.refused_over(Protocol::V1), None);
    }

    #[test]
    fn frames_carry_their_channel_and_split_large_data() {
        assert_eq!(frame(STDOUT, b"hi"), vec![1, b'h', b'i']);
        assert!(frames(STDERR, b"").is_empty());
        let big = vec![7u8; FRAME_DATA * 2 + 5];
        let fs = frames(STDOUT, &big);
        assert_eq!(fs.iter().map(Vec::len).collect::<Vec<_>>(), vec![FRAME_DATA + 1, FRAME_DATA + 1, 6]);
        assert!(fs.iter().all(|f| f[0] == STDOUT));
    }

    #[test]
    fn client_frames_read_by_protocol() {
        let cases = [
            (Protocol::V5, vec![0, b'a', b'b'], ClientFrame::Stdin(b"ab".to_vec())),
            (Protocol::V5, vec![CLOSE, STDIN], ClientFrame::Closed(STDIN)),
            (Protocol::V4, vec![CLOSE, STDIN], ClientFrame::Ignored),
            (Protocol::V5, vec![RESIZE, b'{', b'}'], ClientFrame::Ignored),
            (Protocol::V5, vec![STDIN], ClientFrame::Ignored),
            (Protocol::V5, vec![], ClientFrame::Ignored),
        ];
        for (p, data, want) in cases {
            assert_eq!(client_frame(p, &data), want, "{p:?} {data:?}");
        }
    }

    #[test]
    fn outcomes_follow_each_protocol() {
        let v = |b: Option<Vec<u8>>| serde_json::from_slice::<Value>(&b.unwrap()).unwrap();
        assert_eq!(v(outcome(Protocol::V5, &Ok(0))), json!({"metadata": {}, "status": "Success"}));
        let failed = v(outcome(Protocol::V4, &Ok(7)));
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"], json!([{"reason": "ExitCode", "message": "7"}]));
        let err = v(outcome(Protocol::V5, &Err(Failure::new(503, "ServiceUnavailable", "node gone"))));
        assert_eq!((err["code"].as_u64(), err["message"].as_str()), (Some(503), Some("node gone")));
        assert_eq!(outcome(Protocol::V1, &Ok(0)), None);
        assert_eq!(
            outcome(Protocol::V1, &Ok(2)).unwrap(),
            b"command terminated with non-zero exit code: exit status 2".to_vec()
        );
    }
}

/// Sessions over a real WebSocket: the handler in a Router on a loopback
/// port, a fake command behind it, tokio-tungstenite as the client.
#[cfg(test)]
mod session_tests {
    use super::*;
    use axum::extract::RawQuery;
    use axum::routing::get;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    /// The fake command: exits with its first argument as the code, writes
    /// its other arguments and its stdin to stdout and "warn" to stderr.
    async fn handler(RawQuery(q): RawQuery, ws: WebSocketUpgrade) -> Response {
        let opts = match ExecOptions::parse(q.as_deref().unwrap_or("")) {
            Ok(o) => o,
            Err(f) => return f.into_response(),
        };
        let args = opts.command.clone();
        serve(ws, opts, move |stdin| async move {
            let mut stdout = args[1..].join(" ").into_bytes();
            stdout.extend(stdin.unwrap_or_default());
            Ok(pb::ExecResponse { stdout, stderr: b"warn".to_vec(), exit_code: args[0].parse().unwrap_or(0) })
        })
    }

    async fn server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/exec", get(handler));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// What a client sees: the protocol chosen, the frames, whether the server closed.
    struct Seen {
        protocol: Option<String>,
        frames: Vec<Vec<u8>>,
        closed: bool,
    }

    impl Seen {
        fn channel(&self, ch: u8) -> Vec<u8> {
            self.frames.iter().filter(|f| f[0] == ch).flat_map(|f| f[1..].to_vec()).collect()
        }
        fn status(&self) -> Value {
            serde_json::from_slice(&self.channel(ERROR)).unwrap()
        }
    }

    async fn session(addr: std::net::SocketAddr, query: &str, offer: &str, send: Vec<Vec<u8>>) -> Seen {
        let mut req = format!("ws://{addr}/exec?{query}").into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", offer.parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        let protocol = resp.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().unwrap().to_string());
        for f in send {
            ws.send(WsMessage::Binary(f.into())).await.unwrap();
        }
        let mut seen = Seen { protocol, frames: Vec::new(), closed: false };
        let deadline = std::time::Duration::from_secs(10);
        while let Ok(Some(msg)) = tokio::time::timeout(deadline, ws.next()).await {
            match msg {
                Ok(WsMessage::Binary(b)) => seen.frames.push(b.to_vec()),
                Ok(WsMessage::Close(_)) => seen.closed = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        seen
    }

    #[tokio::test]
    async fn v5_runs_reports_the_exit_code_and_closes() {
        let addr = server().await;
        let seen = session(addr, "command=3&command=out&stdout=true&stderr=true", "v5.channel.k8s.io", vec![]).await;
        assert_eq!(seen.protocol.as_deref(), Some("v5.channel.k8s.io"));
        assert_eq!(seen.channel(STDOUT), b"out");
        assert_eq!(seen.channel(STDERR), b"warn");
        let s = seen.status();
        assert_eq!((s["status"].as_str(), s["reason"].as_str()), (Some("Failure"), Some("NonZeroExitCode")));
        assert_eq!(s["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
        assert_eq!(seen.frames.last().unwrap()[0], ERROR, "the status comes last");
        assert!(seen.closed);
    }

    #[tokio::test]
    async fn v5_gathers_stdin_until_its_close_signal() {
        let addr = server().await;
        let input = vec![frame(STDIN, b"abc"), frame(RESIZE, b"{}"), frame(STDIN, b"def"), vec![CLOSE, STDIN]];
        let seen = session(addr, "command=0&command=in:&stdin=true&stdout=true", "v5.channel.k8s.io", input).await;
        assert_eq!(seen.channel(STDOUT), b"in:abcdef");
        assert!(seen.channel(STDERR).is_empty(), "stderr was not asked for");
        assert_eq!(seen.status(), json!({"metadata": {}, "status": "Success"}));
    }

    #[tokio::test]
    async fn v4_is_chosen_when_offered_and_refuses_stdin() {
        let addr = server().await;
        // The Python client offers both, v5 first; an older one only v4.
        let both = session(addr, "command=0&stdout=true", "v5.channel.k8s.io,v4.channel.k8s.io", vec![]).await;
        assert_eq!(both.protocol.as_deref(), Some("v5.channel.k8s.io"));
        let v4 = session(addr, "command=0&command=x&stdout=true", "v4.channel.k8s.io", vec![]).await;
        assert_eq!(v4.protocol.as_deref(), Some("v4.channel.k8s.io"));
        assert_eq!(v4.channel(STDOUT), b"x");
        assert_eq!(v4.status()["status"], "Success");
        let stdin = session(addr, "command=0&command=x&stdin=true&stdout=true", "v4.channel.k8s.io", vec![]).await;
        assert!(stdin.channel(STDOUT).is_empty(), "nothing ran");
        let s = stdin.status();
        assert_eq!((s["code"].as_u64(), s["reason"].as_str()), (Some(400), Some("BadRequest")));
        assert!(s["message"].as_str().unwrap().contains("v5.channel.k8s.io"), "{s}");
        assert!(stdin.closed);
    }

    #[tokio::test]
    async fn a_terminal_joins_stderr_to_stdout() {
        let addr = server().await;
        let seen = session(addr, "command=0&command=out&stdout=true&tty=true", "v5.channel.k8s.io", vec![]).await;
        assert_eq!(seen.channel(STDOUT), b"outwarn");
        assert!(seen.channel(STDERR).is_empty());
    }

    #[tokio::test]
    async fn v1_reports_only_failures_as_text() {
        let addr = server().await;
        let ok = session(addr, "command=0&command=y&stdout=true", "channel.k8s.io", vec![]).await;
        assert_eq!((ok.channel(STDOUT), ok.channel(ERROR)), (b"y".to_vec(), vec![]));
        let bad = session(addr, "command=2&stdout=true", "channel.k8s.io", vec![]).await;
        assert_eq!(bad.channel(ERROR), b"command terminated with non-zero exit code: exit status 2");
    }

    #[tokio::test]
    async fn unknown_protocols_and_bad_queries_are_refused_before_the_upgrade() {
        let addr = server().await;
        for (query, offer) in [("command=0&stdout=true", "base64.binary.k8s.io"), ("stdout=true", "v5.channel.k8s.io")]
        {
            let mut req = format!("ws://{addr}/exec?{query}").into_client_request().unwrap();
            req.headers_mut().insert("Sec-WebSocket-Protocol", offer.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status(), 400, "{query} {offer}");
                    let s: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
                    assert_eq!(s["kind"], "Status");
                }
                other => panic!("{query} {offer}: {:?}", other.map(|_| ())),
            }
        }
    }
}
