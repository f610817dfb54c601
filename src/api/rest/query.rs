//! A request's query parameters, decoded once: the list and watch options,
//! and the write options (dry run, field manager, force, deletion).

use std::time::Duration;

use super::status::Failure;
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::Kind;

/// The decoded query string (keys may repeat: `command=ls&command=-l`).
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decode a raw query string.
    pub fn parse(query: &str) -> Params {
        Params(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A boolean parameter (`true`, `1`; absent is false).
    pub fn flag(&self, key: &str) -> Result<bool, Failure> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(v) => Err(Failure::bad_request(format!("{key}: invalid value \"{v}\": must be true or false"))),
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<i64>, Failure> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                Failure::bad_request(format!("{key}: invalid value \"{v}\": must be a non-negative integer"))
            }),
        }
    }
}

/// `dryRun=All`: the write is checked and answered, not stored.
pub fn dry_run(p: &Params) -> Result<bool, Failure> {
    match p.all("dryRun").as_slice() {
        [] => Ok(false),
        ["All"] => Ok(true),
        other => Err(Failure::bad_request(format!("dryRun: unsupported value {other:?}: only \"All\" is supported"))),
    }
}

/// The options of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `watch`.
    pub watch: bool,
    /// `resourceVersion` (None when unset or "").
    pub resource_version: Option<u64>,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: String,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

impl ListOptions {
    /// The list options of a request for `kind`.
    pub fn parse(kind: &Kind, p: &Params) -> Result<ListOptions, Failure> {
        let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or(""))
            .map_err(|e| Failure::bad_request(e.to_string()))?;
        let field_text = p.get("fieldSelector").unwrap_or("");
        let fields = FieldSelector::parse(field_text).map_err(|e| Failure::bad_request(e.to_string()))?;
        if let Some(field) = fields.fields().find(|f| !crate::objects::selector::field_supported(kind, f)) {
            return Err(Failure::bad_request(format!("field label not supported: {field}")));
        }
        let resource_version = match p.get("resourceVersion") {
            None | Some("") => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                Failure::bad_request(format!("resourceVersion: invalid value \"{v}\": must be a number"))
            })?),
        };
        Ok(ListOptions {
            labels,
            fields,
            watch: p.flag("watch")?,
            resource_version,
            limit: p.number("limit")?.unwrap_or(0) as usize,
            continue_token: p.get("continue").unwrap_or("").to_string(),
            bookmarks: p.flag("allowWatchBookmarks")?,
            send_initial_events: p.flag("sendInitialEvents")?,
            timeout: p.number("timeoutSeconds")?.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::kinds;

    #[test]
    fn list_options_decode_and_refuse_what_kubernetes_refuses() {
        let p = Params::parse("labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&fieldSelector=spec.nodeName%3Dn1&watch=true&resourceVersion=12&limit=50&timeoutSeconds=30");
        let o = ListOptions::parse(&kinds::POD, &p).unwrap();
        assert!(o.watch);
        assert_eq!((o.resource_version, o.limit, o.timeout), (Some(12), 50, Some(Duration::from_secs(30))));
        assert_eq!(o.labels.0.len(), 2);
        for (query, kind, message) in [
            ("fieldSelector=spec.nodeName%3Dn1", &kinds::DEPLOYMENT, "field label not supported: spec.nodeName"),
            ("limit=-1", &kinds::POD, "limit: invalid value \"-1\""),
            ("watch=maybe", &kinds::POD, "watch: invalid value"),
            ("resourceVersion=abc", &kinds::POD, "resourceVersion: invalid value"),
            ("labelSelector=a%20in%20b", &kinds::POD, "unable to parse"),
        ] {
            let e = ListOptions::parse(kind, &Params::parse(query)).unwrap_err();
            assert_eq!(e.code, 400, "{query}");
            assert!(e.message.contains(message), "{query}: {}", e.message);
        }
    }

    #[test]
    fn repeated_parameters_keep_their_order() {
        let p = Params::parse("command=ls&command=-l&container=c&dryRun=All");
        assert_eq!(p.all("command"), ["ls", "-l"]);
        assert!(dry_run(&p).unwrap());
        assert!(dry_run(&Params::parse("dryRun=Some")).is_err());
    }
}
