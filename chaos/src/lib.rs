//! The judge of clusterd's fault runs. A run records what its clients asked
//! and what they were told (`history`); the checkers decide from that record
//! alone whether the store kept its promises: every history is linearizable,
//! no acknowledged write is lost, watches see every change once and in
//! order, and one revision never names two values. Fault schedules are drawn
//! here too, so a seed reproduces a run. Nothing here knows clusterd: the
//! harness (`tests/chaos.rs`) turns its gRPC answers into these types.

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

#[cfg(test)]
mod sim;
#[cfg(test)]
mod testkit;
