//! Controllers that run on every control-plane node and act on the leader.

pub mod nodeipam;
