//! Fuzzing label and field selectors: the text of `-l`/`labelSelector` and
//! `fieldSelector` comes straight from users. Parsing never panics, a
//! selector that parses names only valid label keys and values (what
//! Kubernetes accepts), printing and parsing again gives the same selector,
//! and matching never panics. `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;
use serde_json::json;

use super::selector::{FieldSelector, LabelSelector, Requirement};
use super::validate::{is_label_value, is_qualified_name};
use crate::objects::fuzz_config::config;

fn name_part() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9._-]{0,10}[a-zA-Z0-9])?"
}

fn label_key() -> impl Strategy<Value = String> {
    (prop::option::of("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,2}"), name_part()).prop_map(
        |(prefix, name)| match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name,
        },
    )
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), name_part()]
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let values = || prop::collection::vec(name_part(), 1..4);
    prop_oneof![
        (label_key(), label_value()).prop_map(|(k, v)| Requirement::Equals(k, v)),
        (label_key(), label_value()).prop_map(|(k, v)| Requirement::NotEquals(k, v)),
        (label_key(), values()).prop_map(|(k, v)| Requirement::In(k, v)),
        (label_key(), values()).prop_map(|(k, v)| Requirement::NotIn(k, v)),
        label_key().prop_map(Requirement::Exists),
        label_key().prop_map(Requirement::DoesNotExist),
    ]
}

/// Selector-like text: the selector alphabet, spaces and anything else.
fn selector_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-z!=(), /.-]{0,40}",
        "(([a-z]{1,3}|in|notin|!|=|==|!=|\\(|\\)|,| ){0,12})",
        prop::collection::vec(requirement(), 0..4).prop_map(|r| LabelSelector(r).to_string()),
    ]
}

fn keys_and_values(sel: &LabelSelector) -> (Vec<&str>, Vec<&str>) {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for r in &sel.0 {
        match r {
            Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => {
                keys.push(k.as_str());
                values.push(v.as_str());
            }
            Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                keys.push(k.as_str());
                values.extend(vs.iter().map(String::as_str));
            }
            Requirement::Exists(k) | Requirement::DoesNotExist(k) => keys.push(k.as_str()),
        }
    }
    (keys, values)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_label_selector_text_parses_to_valid_keys_and_values_or_an_error(text in selector_text()) {
        if let Ok(sel) = LabelSelector::parse(&text) {
            let (keys, values) = keys_and_values(&sel);
            for k in keys {
                prop_assert!(is_qualified_name(k), "{text:?} parsed with the key {k:?}");
            }
            for v in values {
                prop_assert!(is_label_value(v), "{text:?} parsed with the value {v:?}");
            }
            let obj = json!({"metadata": {"labels": {"app": "web", "a/b": ""}}});
            let _ = sel.matches(&obj);
            prop_assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
        }
    }

    #[test]
    fn fuzz_label_selectors_print_and_parse_back(reqs in prop::collection::vec(requirement(), 0..5)) {
        let sel = LabelSelector(reqs);
        prop_assert_eq!(LabelSelector::parse(&sel.to_string()), Ok(sel));
    }

    #[test]
    fn fuzz_field_selector_text_parses_or_is_an_error(text in selector_text()) {
        if let Ok(sel) = FieldSelector::parse(&text) {
            let obj = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "x": [1, {"y": null}]}});
            let _ = sel.matches(&obj);
            let _ = sel.fields().count();
        }
    }

    #[test]
    fn fuzz_field_selectors_select_what_they_say(
        terms in prop::collection::vec(
            ("[a-z]{1,8}(\\.[a-z]{1,8}){0,2}", any::<bool>(), "[a-zA-Z0-9.:()_-]{0,12}"),
            1..4,
        ),
    ) {
        let text: Vec<String> =
            terms.iter().map(|(f, eq, v)| format!("{f}{}{v}", if *eq { "=" } else { "!=" })).collect();
        let sel = FieldSelector::parse(&text.join(",")).unwrap();
        prop_assert_eq!(sel.fields().count(), terms.len());
        for (f, eq, v) in &terms {
            if *eq && terms.iter().filter(|(g, _, _)| g == f).count() == 1 {
                prop_assert_eq!(sel.required(f), Some(v.as_str()));
            }
        }
    }
}
