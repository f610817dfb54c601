//! The judge of clusterd's fault runs. A run records what its clients asked
//! and what they were told (`history`); the checkers decide from that record
//! alone whether the store kept the promises clusterd makes, the ones etcd
//! makes and Jepsen-style testing found broken in many stores:
//!
//! * `linearizable`: single-key operations (creates, compare-and-swap
//!   updates, deletes, gets) have a legal sequential order consistent with
//!   real time — a porcupine-style search per key, with a small failing
//!   sub-history when there is none;
//! * `lists`: lists are snapshots at their revision, in real-time order;
//! * `lost`: after healing, every node holds every acknowledged write;
//! * `watches`: watches see every change once and in order;
//! * `revisions`: one revision names one change, and every value seen was
//!   written.
//!
//! `report::check` runs them all and summarizes the run; `schedule` draws
//! the run's faults from a seed, so a failing run can be replayed. Lost
//! answers (timeouts) are first-class: such a write may have taken effect
//! at any later time or never, and the checkers accept either, so faults
//! cannot produce false alarms. Nothing here knows clusterd: the harness
//! (`tests/chaos.rs`) turns its gRPC answers into these types, which keeps
//! the checkers pure and fast (tens of milliseconds per 10,000 operations).

pub mod facts;
pub mod history;
pub mod linearizable;
pub mod lists;
pub mod lost;
pub mod report;
pub mod revisions;
pub mod schedule;
pub mod violation;
pub mod watches;

pub use report::{check, check_with, FaultRecord, Report};

#[cfg(test)]
mod sim;
#[cfg(test)]
mod testkit;
