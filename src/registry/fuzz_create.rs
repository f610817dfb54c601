//! Fuzzing the registry's create, the one path every door's create takes:
//! mutated manifests against a real one-member store (RocksDB in a temporary
//! directory). A refused create writes nothing (every key and value is as
//! before; one refused by admission proposes nothing at all, so the revision
//! stays too), an accepted one is stored as answered, and a refusal for
//! invalid fields names them.
//! `PROPTEST_CASES` scales the runs.

use proptest::strategy::Strategy;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::json;

use super::testing::TestCluster;
use super::RegistryError;
use crate::objects::fuzz_config::config;
use crate::objects::fuzz_manifests::manifest;
use crate::objects::key_of;

#[test]
fn fuzz_a_refused_create_stores_nothing_and_an_accepted_one_is_stored() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster = rt.block_on(TestCluster::start(1, json!({})));
    let r = cluster.registries[0].clone();
    // The store keeps every accepted object and each case compares it whole:
    // long runs stop at a few thousand cases here.
    let mut cfg = config(128);
    cfg.cases = cfg.cases.min(3_000);
    let mut runner = TestRunner::new(cfg);
    let (created_count, refused_count) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    // A name of its own for most cases, so that creates are not all refused as existing.
    let input = (manifest(), proptest::option::of("[a-z0-9]{6}")).prop_map(|(mut obj, suffix)| {
        if let (Some(suffix), Some(name)) = (suffix, obj.pointer_mut("/metadata/name")) {
            if let Some(n) = name.as_str() {
                *name = json!(format!("{n}-{suffix}"));
            }
        }
        obj
    });
    let result = runner.run(&input, |obj| {
        let before = r.reader().revision();
        let everything = || r.reader().list("/").unwrap().0;
        let all_before = everything();
        match rt.block_on(r.create(obj.clone())) {
            Ok(created) => {
                created_count.set(created_count.get() + 1);
                let key = key_of(&created).expect("a created object has a key");
                let stored = r.get_key(&key).unwrap();
                if stored.as_ref() != Some(&created) {
                    return Err(TestCaseError::fail(format!("answered {created}, stored {stored:?}")));
                }
                if r.reader().revision() <= before {
                    return Err(TestCaseError::fail("a create that wrote nothing"));
                }
            }
            Err(e) => {
                refused_count.set(refused_count.get() + 1);
                if everything() != all_before {
                    return Err(TestCaseError::fail(format!("refused ({e}) but the store changed")));
                }
                // Only the compare of the name (and of the namespace) is decided in the store.
                let decided_in_store =
                    matches!(e, RegistryError::AlreadyExists { .. } | RegistryError::NotFound { .. });
                if !decided_in_store && r.reader().revision() != before {
                    return Err(TestCaseError::fail(format!("refused ({e}) but a proposal was made")));
                }
                if let RegistryError::Invalid(inv) = &e {
                    if inv.causes.is_empty() || inv.causes.iter().any(|c| c.field.is_empty()) {
                        return Err(TestCaseError::fail(format!("a refusal without fields: {e}")));
                    }
                }
            }
        }
        Ok(())
    });
    rt.block_on(cluster.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
    let (created, refused) = (created_count.get(), refused_count.get());
    assert!(created > 0 && refused > 0, "{created} created, {refused} refused");
}
