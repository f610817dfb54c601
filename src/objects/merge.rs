//! JSON merge patches (RFC 7386): applying one, and the one that turns one
//! document into another. Objects merge key by key, `null` removes a key,
//! anything else (arrays included) replaces.

use serde_json::{Map, Value};

/// Apply the merge patch `patch` to `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge patch that turns `before` into `after` (keys equal in both are
/// left out, so applying it to a superset of `before` keeps the extra keys).
pub fn diff(before: &Value, after: &Value) -> Value {
    match (before.as_object(), after.as_object()) {
        (Some(b), Some(a)) => {
            let mut patch = Map::new();
            for (k, av) in a {
                match b.get(k) {
                    Some(bv) if bv == av => {}
                    Some(bv) if bv.is_object() && av.is_object() => {
                        patch.insert(k.clone(), diff(bv, av));
                    }
                    _ => {
                        patch.insert(k.clone(), av.clone());
                    }
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => after.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a"]), json!({"a": "b"}), json!({"a": "b"})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        ];
        for (target, patch, want) in cases {
            let mut t = target.clone();
            merge(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        }
    }

    #[test]
    fn diff_then_merge_gives_after_and_keeps_extra_keys() {
        let before = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        let after = json!({"a": 1, "b": {"c": 5}, "e": [1, 2], "f": "new"});
        let patch = diff(&before, &after);
        assert_eq!(patch, json!({"b": {"c": 5, "d": null}, "e": [1, 2], "f": "new"}));
        let mut superset = before.clone();
        superset["extra"] = json!("kept");
        superset["b"]["extra"] = json!("kept too");
        merge(&mut superset, &patch);
        let mut want = after.clone();
        want["extra"] = json!("kept");
        want["b"]["extra"] = json!("kept too");
        assert_eq!(superset, want);
    }
}
