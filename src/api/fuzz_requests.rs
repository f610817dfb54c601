//! Fuzzing what clients send the API: gRPC request messages as bytes, then
//! the handlers' pure steps on odd field values (kind resolution, selectors,
//! delete options and the deletion they plan, token lifetimes, admission of
//! the JSON of a create), and the REST door's query parameters (list and log
//! options). Nothing here may panic; refusals are errors.
//! `PROPTEST_CASES` scales the runs.

use std::time::Duration;

use proptest::prelude::*;
use prost::Message;
use serde_json::json;

use super::pb;
use super::rest::logs::LogOptions;
use super::rest::query::{ListOptions, Params};
use crate::objects::admission;
use crate::objects::fuzz_config::config;
use crate::objects::fuzz_manifests::{admit_checked, manifest};
use crate::objects::kinds::KINDS;
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::Kind;
use crate::registry::deletion::{plan, Propagation};

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc()
}

/// What the handlers do with a request's fields before they touch the store.
fn handle_fields(kind: &str, label_selector: &str, field_selector: &str) {
    let _ = Kind::resolve(kind).map(|k| k.key("default", "x"));
    let _ = LabelSelector::parse(label_selector);
    let _ = FieldSelector::parse(field_selector);
}

/// A delete's plan for a bound pod and a deployment, with these options.
fn plan_delete(grace: Option<i64>, policy: &str, pod_grace: i64) {
    let Ok(policy) = Propagation::parse(policy) else { return };
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}], "terminationGracePeriodSeconds": pod_grace}});
    if let Some(marked) = plan(&crate::objects::kinds::POD, &pod, grace, policy, now()) {
        if let Some(t) = marked["metadata"]["deletionTimestamp"].as_str() {
            assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "deletionTimestamp {t}");
        }
    }
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let _ = plan(&crate::objects::kinds::DEPLOYMENT, &deployment, grace, policy, now());
}

fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        ".{0,30}",
        "[a-zA-Z.]{0,20}",
        (1usize..100_000).prop_map(|n| "a".repeat(n)),
        prop::sample::select(KINDS.iter().map(|k| k.plural).collect::<Vec<_>>()).prop_map(String::from),
    ]
}

fn odd_i64() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), Just(-1i64), 0i64..100]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_grpc_request_bytes_decode_and_their_fields_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let b = &bytes[..];
        if let Ok(r) = pb::ObjectRequest::decode(b) {
            if let Ok((_, obj)) = admission::parse(&r.json) {
                admit_checked(obj)?;
            }
        }
        if let Ok(r) = pb::GetRequest::decode(b) {
            handle_fields(&r.kind, "", "");
        }
        if let Ok(r) = pb::ListRequest::decode(b) {
            handle_fields(&r.kind, &r.label_selector, &r.field_selector);
        }
        if let Ok(r) = pb::WatchRequest::decode(b) {
            handle_fields(&r.kind, &r.label_selector, &r.field_selector);
        }
        if let Ok(r) = pb::DeleteRequest::decode(b) {
            handle_fields(&r.kind, "", "");
            plan_delete(r.grace_period_seconds, &r.propagation_policy, 30);
        }
        if let Ok(r) = pb::CreateTokenRequest::decode(b) {
            let _ = super::tokens::expiration(now(), Duration::from_secs(r.ttl_seconds));
        }
        let _ = pb::JoinRequest::decode(b).map(|r| super::tokens::JoinToken::parse(&r.token));
        let _ = pb::RemoveMemberRequest::decode(b);
        let _ = pb::CompactRequest::decode(b);
        let _ = pb::LogsRequest::decode(b);
        let _ = pb::ExecRequest::decode(b);
        let _ = pb::LoadImageRequest::decode(b);
        let _ = pb::TopRequest::decode(b);
        let _ = pb::SaveSnapshotRequest::decode(b);
    }

    #[test]
    fn fuzz_odd_request_fields_are_handled(
        kind in odd_text(),
        labels in odd_text(),
        fields in odd_text(),
        grace in prop::option::of(odd_i64()),
        pod_grace in odd_i64(),
        policy in prop_oneof![Just(""), Just("Background"), Just("Foreground"), Just("Orphan"), Just("sideways")],
        ttl in prop_oneof![any::<u64>(), 0u64..100_000_000_000, Just(u64::MAX)],
    ) {
        handle_fields(&kind, &labels, &fields);
        plan_delete(grace, policy, pod_grace);
        let _ = super::tokens::expiration(now(), Duration::from_secs(ttl));
        let _ = super::tokens::JoinToken::parse(&kind);
    }

    #[test]
    fn fuzz_create_requests_carry_manifests(obj in manifest()) {
        let r = pb::ObjectRequest { json: obj.to_string() };
        let back = pb::ObjectRequest::decode(&r.encode_to_vec()[..]).unwrap();
        if let Ok((_, obj)) = admission::parse(&back.json) {
            admit_checked(obj)?;
        }
    }

    #[test]
    fn fuzz_every_kind_resolves_by_each_of_its_names_in_any_case(
        k in prop::sample::select(KINDS.to_vec()),
        which in 0usize..8,
        upper in prop::collection::vec(any::<bool>(), 30),
        group in prop::option::of("[a-z]{1,8}(\\.[a-z]{1,5})?"),
    ) {
        let names: Vec<&str> = [k.kind, k.plural, k.singular].into_iter().chain(k.short.iter().copied()).collect();
        let name: String = names[which % names.len()]
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        let name = match group { Some(g) => format!("{name}.{g}"), None => name };
        prop_assert_eq!(Kind::resolve(&name).map(|r| r.kind), Some(k.kind), "{}", name);
    }

    #[test]
    fn fuzz_rest_query_parameters_parse_or_are_refused(
        query in prop_oneof![
            ".{0,60}",
            prop::collection::vec((
                prop::sample::select(vec![
                    "labelSelector", "fieldSelector", "watch", "resourceVersion", "limit", "continue",
                    "timeoutSeconds", "allowWatchBookmarks", "sendInitialEvents", "sinceSeconds", "sinceTime",
                    "tailLines", "limitBytes", "follow", "previous", "timestamps", "container",
                ]),
                prop_oneof![
                    Just("9223372036854775807".to_string()),
                    Just("-9223372036854775808".to_string()),
                    Just("1e3".to_string()),
                    Just("+262143-01-01T00:00:00Z".to_string()),
                    Just("9999-12-31T23:59:59Z".to_string()),
                    "[a-z0-9=!,() %-]{0,16}",
                ],
            ), 0..5)
            .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")),
        ],
        kind in prop::sample::select(KINDS.to_vec()),
    ) {
        let _ = ListOptions::parse(kind, &Params::parse(&query));
        if let Ok(o) = LogOptions::parse("p", &query) {
            let _ = o.cutoff(now());
        }
    }
}
