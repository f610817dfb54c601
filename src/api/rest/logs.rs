//! `pods/log`: a container's log as plain text, the whole of it or streamed
//! as it grows (`follow`). The node that runs the pod holds the log; this
//! node fetches it over the node transport and, following, fetches again
//! until the container's instance ends, the pod goes, or the client leaves.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::status::Failure;
use crate::api::pods::{self, ContainerLog, Target};
use crate::kubelet::service::LogLine;
use crate::registry::Registry;

/// How often a follower asks the node for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// The `PodLogOptions` of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// The container ("" = the pod's first).
    pub container: String,
    /// Stream new lines as they come.
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<usize>,
    /// The instance before the current one.
    pub previous: bool,
    /// Only lines written since then.
    pub since: Option<Since>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// At most this many bytes in all.
    pub limit_bytes: Option<u64>,
}

/// Where `sinceSeconds` or `sinceTime` start the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Seconds before the request.
    Seconds(i64),
    /// A point in time.
    Time(DateTime<Utc>),
}

/// The raw query as name/value pairs (percent-decoded, repeated names kept).
pub(crate) fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Failure> {
    let uri: axum::http::Uri =
        format!("/?{query}").parse().map_err(|_| Failure::bad_request(format!("malformed query: {query}")))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| Failure::bad_request(format!("malformed query: {e}")))
}

/// A boolean query parameter, spelled as Go's `strconv.ParseBool` takes it.
pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool, Failure> {
    match v {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Failure::bad_request(format!("{name}: invalid boolean value {v:?}"))),
    }
}

/// 422 for an option out of range, as the API server validates `PodLogOptions`.
fn invalid(pod: &str, field: &str, value: &str, why: &str) -> Failure {
    let message = format!("Invalid value: {value}: {why}");
    Failure {
        code: 422,
        reason: "Invalid",
        message: format!("PodLogOptions \"{pod}\" is invalid: {field}: {message}"),
        details: Some(json!({
            "name": pod,
            "kind": "PodLogOptions",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        })),
    }
}

impl LogOptions {
    /// The options of a `pods/log` query (`pod` names the pod in errors).
    pub fn parse(pod: &str, query: &str) -> Result<Self, Failure> {
        let mut o = LogOptions::default();
        let int = |name: &str, v: &str| {
            v.parse::<i64>().map_err(|_| Failure::bad_request(format!("{name}: invalid integer value {v:?}")))
        };
        for (k, v) in query_pairs(query)? {
            match k.as_str() {
                "container" => o.container = v,
                "follow" => o.follow = parse_bool(&k, &v)?,
                "previous" => o.previous = parse_bool(&k, &v)?,
                "timestamps" => o.timestamps = parse_bool(&k, &v)?,
                "insecureSkipTLSVerifyBackend" => {}
                "tailLines" => {
                    let n = int(&k, &v)?;
                    if n < 0 {
                        return Err(invalid(pod, "tailLines", &v, "must be greater than or equal to 0"));
                    }
                    o.tail_lines = Some(n as usize);
                }
                "limitBytes" => {
                    let n = int(&k, &v)?;
                    if n < 1 {
                        return Err(invalid(pod, "limitBytes", &v, "must be greater than 0"));
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = int(&k, &v)?;
                    if n < 1 {
                        return Err(invalid(pod, "sinceSeconds", &v, "must be greater than 0"));
                    }
                    o.since = Some(match o.since {
                        Some(_) => return Err(both_since(pod)),
                        None => Since::Seconds(n),
                    });
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(&v)
                        .map_err(|_| Failure::bad_request(format!("sinceTime: invalid RFC 3339 time {v:?}")))?;
                    o.since = Some(match o.since {
                        Some(_) => return Err(both_since(pod)),
                        None => Since::Time(t.with_timezone(&Utc)),
                    });
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// The earliest time a line may have, for a request at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.since? {
            // A number of seconds too large for a time means since the beginning.
            Since::Seconds(s) => Some(
                chrono::TimeDelta::try_seconds(s)
                    .and_then(|d| now.checked_sub_signed(d))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            ),
            Since::Time(t) => Some(t),
        }
    }
}

fn both_since(pod: &str) -> Failure {
    let message = "at most one of `sinceTime` or `sinceSeconds` may be specified";
    Failure {
        code: 422,
        reason: "Invalid",
        message: format!("PodLogOptions \"{pod}\" is invalid: sinceSeconds: Forbidden: {message}"),
        details: Some(json!({
            "name": pod,
            "kind": "PodLogOptions",
            "causes": [{"reason": "FieldValueForbidden", "message": format!("Forbidden: {message}"), "field": "sinceSeconds"}],
        })),
    }
}

/// The text of `lines` as the client reads it: lines older than `cutoff`
/// left out (a line whose time does not parse is kept), each ended by a
/// newline and, with `timestamps`, preceded by its time.
pub fn render(lines: &[LogLine], timestamps: bool, cutoff: Option<DateTime<Utc>>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if let Some(c) = cutoff {
            if DateTime::parse_from_rfc3339(&l.time).is_ok_and(|t| t < c) {
                continue;
            }
        }
        if timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.text.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The last `tail` lines (all without a tail).
pub fn tail(lines: &[LogLine], tail: Option<usize>) -> &[LogLine] {
    &lines[tail.map_or(0, |t| lines.len().saturating_sub(t))..]
}

/// What is left of `limitBytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(Option<u64>);

impl Budget {
    /// `bytes` cut to what is left, and whether the budget is now spent.
    pub fn take(&mut self, mut bytes: Vec<u8>) -> (Vec<u8>, bool) {
        let Some(left) = self.0.as_mut() else { return (bytes, false) };
        bytes.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
        *left -= bytes.len() as u64;
        (bytes, *left == 0)
    }
}

/// `GET /api/v1/namespaces/{namespace}/pods/{pod}/log`.
pub async fn logs(registry: &Registry, namespace: &str, pod: &str, query: &str) -> Response {
    match answer(registry, namespace, pod, query).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn answer(registry: &Registry, namespace: &str, pod: &str, query: &str) -> Result<Response, Failure> {
    let opts = LogOptions::parse(pod, query)?;
    let target = pods::target(registry, namespace, pod, &opts.container)?;
    if !opts.previous {
        if let Some(why) = pods::never_started(&target.pod, &target.container) {
            return Err(Failure::bad_request(why));
        }
    }
    let cutoff = opts.cutoff(Utc::now());
    let log = pods::container_log(registry, &target, opts.previous).await?;
    let mut budget = Budget(opts.limit_bytes);
    let (first, spent) = budget.take(render(tail(&log.lines, opts.tail_lines), opts.timestamps, cutoff));
    let text = |body: Body| ([(header::CONTENT_TYPE, "text/plain")], body).into_response();
    if !opts.follow || log.finished || spent {
        return Ok(text(Body::from(first)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    if !first.is_empty() {
        let _ = tx.send(Ok(Bytes::from(first))).await;
    }
    let follower = Follower { timestamps: opts.timestamps, cutoff, budget, seen: log.lines.len() };
    let registry = registry.clone();
    let look = move || {
        let (registry, t, previous) = (registry.clone(), target.clone(), opts.previous);
        async move { look_again(&registry, &t, previous).await }
    };
    tokio::spawn(follower.run(look, FOLLOW_POLL, tx));
    Ok(text(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))))
}

/// What a follower's next look at the log finds.
#[derive(Debug)]
pub enum Look {
    /// The log as it is now.
    Log(ContainerLog),
    /// The pod is gone (or is another pod of the same name): the end.
    Gone,
    /// The node did not answer this time.
    Failed,
}

/// Look at the pod again (it may be gone, or its container may have ended)
/// and fetch the log.
async fn look_again(registry: &Registry, t: &Target, previous: bool) -> Look {
    let now = match pods::target(registry, &t.namespace, t.pod_name(), &t.container) {
        Ok(now) if now.pod.metadata.uid == t.pod.metadata.uid => now,
        Ok(_) => return Look::Gone,
        Err(s) if s.code() == tonic::Code::NotFound => return Look::Gone,
        Err(_) => return Look::Failed,
    };
    match pods::container_log(registry, &now, previous).await {
        Ok(log) => Look::Log(log),
        Err(e) => {
            tracing::debug!(pod = t.pod_name(), error = %e.message(), "following a log");
            Look::Failed
        }
    }
}

/// A `follow` request after its first answer.
struct Follower {
    timestamps: bool,
    cutoff: Option<DateTime<Utc>>,
    budget: Budget,
    /// Lines of the instance already sent (or left out by the tail).
    seen: usize,
}

impl Follower {
    /// Send what `look` finds new every `poll` until the client leaves, the
    /// pod goes, the container's instance ends or the byte limit is reached.
    async fn run<L, F>(
        mut self,
        mut look: L,
        poll: Duration,
        tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) where
        L: FnMut() -> F,
        F: std::future::Future<Output = Look>,
    {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = tx.closed() => return,
            }
            let log = match look().await {
                Look::Log(log) => log,
                Look::Gone => return,
                Look::Failed => continue,
            };
            // A new instance (or a rotated log) starts over.
            if log.lines.len() < self.seen {
                self.seen = 0;
            }
            let (chunk, spent) = self.budget.take(render(&log.lines[self.seen..], self.timestamps, self.cutoff));
            self.seen = log.lines.len();
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if spent || log.finished {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: &str, text: &str) -> LogLine {
        LogLine { time: time.into(), text: text.into() }
    }

    #[test]
    fn options_parse_as_kubernetes_takes_them() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let cases: Vec<(&str, LogOptions)> = vec![
            ("", LogOptions::default()),
            (
                "container=web&follow=true&tailLines=10&timestamps=1&limitBytes=500",
                LogOptions {
                    container: "web".into(),
                    follow: true,
                    tail_lines: Some(10),
                    timestamps: true,
                    limit_bytes: Some(500),
                    ..Default::default()
                },
            ),
            (
                "previous=true&sinceSeconds=60",
                LogOptions { previous: true, since: Some(Since::Seconds(60)), ..Default::default() },
            ),
            (
                "sinceTime=2026-01-01T10%3A00%3A00Z",
                LogOptions { since: Some(Since::Time(t("2026-01-01T10:00:00Z"))), ..Default::default() },
            ),
            ("follow=false&pretty=true", LogOptions::default()),
        ];
        for (q, want) in cases {
            assert_eq!(LogOptions::parse("p", q).unwrap(), want, "{q}");
        }
    }

    #[test]
    fn bad_options_are_refused_with_kubernetes_codes() {
        let cases = [
            ("tailLines=-1", 422, "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"),
            ("limitBytes=0", 422, "PodLogOptions \"p\" is invalid: limitBytes: Invalid value: 0: must be greater than 0"),
            ("sinceSeconds=0", 422, "PodLogOptions \"p\" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0"),
            (
                "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
                422,
                "PodLogOptions \"p\" is invalid: sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
            ("tailLines=ten", 400, "tailLines: invalid integer value \"ten\""),
            ("follow=maybe", 400, "follow: invalid boolean value \"maybe\""),
            ("sinceTime=yesterday", 400, "sinceTime: invalid RFC 3339 time \"yesterday\""),
        ];
        for (q, code, message) in cases {
            let f = LogOptions::parse("p", q).unwrap_err();
            assert_eq!((f.code, f.message.as_str()), (code, message), "{q}");
        }
    }

    #[test]
    fn since_counts_back_from_the_request() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let o = LogOptions { since: Some(Since::Seconds(90)), ..Default::default() };
        assert_eq!(o.cutoff(now).unwrap().to_rfc3339(), "2026-01-01T09:58:30+00:00");
        assert_eq!(LogOptions::default().cutoff(now), None);
    }

    /// Found by fuzzing: `sinceSeconds=9223372036854775807` panicked
    /// ("TimeDelta::seconds out of bounds") in the pods/log handler.
    #[test]
    fn since_seconds_beyond_any_time_reads_from_the_beginning() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
        for seconds in [i64::MAX, 1 << 62, 300_000_000_000_000] {
            let o = LogOptions::parse("p", &format!("sinceSeconds={seconds}")).unwrap();
            assert_eq!(o.cutoff(now), Some(DateTime::<Utc>::MIN_UTC), "{seconds}");
        }
    }

    #[test]
    fn lines_render_with_times_tails_and_cutoffs() {
        let lines = vec![
            line("2026-01-01T10:00:00.000000001Z", "one"),
            line("2026-01-01T10:00:05.5Z", "two"),
            line("garbled", "three"),
            line("2026-01-01T10:00:09Z", "four"),
        ];
        let cutoff = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let cases = [
            (None, false, None, "one\ntwo\nthree\nfour\n"),
            (Some(2), false, None, "three\nfour\n"),
            (Some(0), false, None, ""),
            (Some(9), false, None, "one\ntwo\nthree\nfour\n"),
            (None, true, None, "2026-01-01T10:00:00.000000001Z one\n2026-01-01T10:00:05.5Z two\ngarbled three\n2026-01-01T10:00:09Z four\n"),
            (None, false, cutoff("2026-01-01T10:00:05Z"), "two\nthree\nfour\n"),
            (Some(3), false, cutoff("2026-01-01T10:00:06Z"), "three\nfour\n"),
        ];
        for (t, ts, cut, want) in cases {
            let got = render(tail(&lines, t), ts, cut);
            assert_eq!(String::from_utf8(got).unwrap(), want, "tail {t:?} timestamps {ts} cutoff {cut:?}");
        }
    }

    #[test]
    fn the_byte_limit_spans_chunks() {
        let mut b = Budget(Some(10));
        assert_eq!(b.take(b"line 1\n".to_vec()), (b"line 1\n".to_vec(), false));
        assert_eq!(b.take(b"line 2\n".to_vec()), (b"lin".to_vec(), true));
        let mut unlimited = Budget(None);
        assert_eq!(unlimited.take(b"x".repeat(100)), (b"x".repeat(100), false));
    }

    /// Run a follower over a scripted sequence of looks; what the client reads.
    async fn follow(first_seen: usize, budget: Option<u64>, looks: Vec<Look>) -> String {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut looks = std::collections::VecDeque::from(looks);
        let look = move || {
            let next = looks.pop_front().unwrap_or(Look::Failed);
            async move { next }
        };
        let f = Follower { timestamps: false, cutoff: None, budget: Budget(budget), seen: first_seen };
        let run = tokio::spawn(f.run(look, Duration::from_millis(1), tx));
        let mut got = Vec::new();
        let deadline = Duration::from_secs(5);
        while let Ok(Some(chunk)) = tokio::time::timeout(deadline, rx.recv()).await {
            got.extend_from_slice(&chunk.unwrap());
        }
        tokio::time::timeout(deadline, run).await.expect("the follower ended").unwrap();
        String::from_utf8(got).unwrap()
    }

    fn log(texts: &[&str], finished: bool) -> Look {
        Look::Log(ContainerLog { lines: texts.iter().map(|t| line("2026-01-01T00:00:00Z", t)).collect(), finished })
    }

    #[tokio::test]
    async fn a_follower_sends_new_lines_until_the_container_ends() {
        let looks =
            vec![log(&["a"], false), Look::Failed, log(&["a", "b", "c"], false), log(&["a", "b", "c", "d"], true)];
        assert_eq!(follow(1, None, looks).await, "b\nc\nd\n");
    }

    #[tokio::test]
    async fn a_follower_stops_when_the_pod_goes_or_the_limit_is_reached() {
        let gone = vec![log(&["a", "b"], false), Look::Gone, log(&["a", "b", "never"], false)];
        assert_eq!(follow(1, None, gone).await, "b\n");
        let limited = vec![log(&["a", "bb"], false), log(&["a", "bb", "ccc", "never"], false)];
        assert_eq!(follow(1, Some(5), limited).await, "bb\ncc");
    }

    #[tokio::test]
    async fn a_new_instance_is_followed_from_its_start() {
        let looks = vec![log(&["one", "two", "three"], false), log(&["fresh"], true)];
        assert_eq!(follow(2, None, looks).await, "three\nfresh\n");
    }

    #[tokio::test]
    async fn a_follower_ends_when_its_client_leaves() {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        drop(rx);
        let f = Follower { timestamps: false, cutoff: None, budget: Budget(None), seen: 0 };
        let forever = || async { Look::Failed };
        let run = tokio::spawn(f.run(forever, Duration::from_millis(1), tx));
        tokio::time::timeout(Duration::from_secs(5), run).await.expect("the follower ended").unwrap();
    }
}
