//! How many cases each property-based fuzz test runs: a few hundred in
//! `make test`, as many as `PROPTEST_CASES` asks for in `make fuzz`. Failures
//! are not persisted to files: each bug found gets a unit test of its own
//! with the exact failing input.

use proptest::test_runner::Config;

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}
