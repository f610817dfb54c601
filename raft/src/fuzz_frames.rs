//! Fuzzing what a peer sends: transport frames and the bincode messages in
//! them. A member's transport decodes whatever an authenticated peer writes
//! (and the store decodes its own records the same way); arbitrary or damaged
//! bytes must give an error, never a panic, and never an allocation larger
//! than the bytes could hold. `PROPTEST_CASES` scales the runs (`make fuzz`).

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::alloc_probe::largest_allocation;
use crate::codec::{decode, encode};
use crate::command::{Command, CommandResponse, Compare, KeyValue, Op, Txn};
use crate::rpc::{ClusterStatus, MemberStatus, RemoteError, Request, Response};
use crate::transport::{read_frame, MAX_FRAME};
use crate::types::{Entry, LeaderId, LogId, Member, SnapshotMeta, StoredMembership, Vote};

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// What decoding `input` may allocate at most in one piece: the codec's
/// smallest limit step or 16 times the input for strings and byte buffers,
/// or serde's cap on a sequence's preallocation (1 MiB).
fn allocation_bound(input: usize) -> usize {
    (64 << 10).max(16 * input) + (1 << 20)
}

fn decodes_within_bounds(bytes: &[u8]) -> Result<(), TestCaseError> {
    fn one<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
        let (_, largest) = largest_allocation(|| decode::<T>(bytes).is_ok());
        prop_assert!(
            largest <= allocation_bound(bytes.len()),
            "decoding {} bytes as {} allocated {largest} bytes",
            bytes.len(),
            std::any::type_name::<T>()
        );
        Ok(())
    }
    one::<Request>(bytes)?;
    one::<Response>(bytes)?;
    one::<Entry>(bytes)?;
    one::<Command>(bytes)?;
    one::<Vec<crate::command::Event>>(bytes)?;
    Ok(())
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("/registry/pods/default/p".to_string()), ".{0,40}"]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(key, value)| Op::Put { key, value }),
        key().prop_map(|key| Op::Delete { key }),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    let compare = prop_oneof![
        (key(), any::<u64>()).prop_map(|(k, r)| Compare::ModRevision(k, r)),
        key().prop_map(Compare::Exists),
    ];
    (prop::collection::vec(compare, 0..3), prop::collection::vec(op(), 0..4))
        .prop_map(|(compares, success)| Txn { compares, success })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        txn().prop_map(Command::Txn),
        (any::<u128>(), txn()).prop_map(|(id, txn)| Command::Unique { id, txn }),
        any::<u64>().prop_map(Command::Compact),
    ]
}

fn member() -> impl Strategy<Value = Member> {
    (".{0,12}", ".{0,21}", ".{0,21}").prop_map(|(name, raft_addr, api_addr)| Member { name, raft_addr, api_addr })
}

/// Valid messages of the kinds peers exchange, encoded.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    let vote = (any::<u64>(), any::<u64>()).prop_map(|(t, n)| Vote::new(t, n));
    let log_id = (any::<u64>(), any::<u64>(), any::<u64>())
        .prop_map(|(term, node_id, index)| LogId::new(LeaderId { term, node_id }, index));
    let kv = (key(), prop::collection::vec(any::<u8>(), 0..32), any::<u64>(), any::<u64>())
        .prop_map(|(key, value, create_revision, mod_revision)| KeyValue { key, value, create_revision, mod_revision });
    prop_oneof![
        command().prop_map(|c| encode(&Request::Write(c)).unwrap()),
        command().prop_map(|c| encode(&c).unwrap()),
        (log_id.clone(), command()).prop_map(|(log_id, c)| encode(&Entry {
            log_id,
            payload: openraft::EntryPayload::Normal(c)
        })
        .unwrap()),
        (vote.clone(), prop::option::of(log_id.clone()), any::<bool>()).prop_map(
            |(vote, last_log_id, leadership_transfer)| {
                encode(&Request::Vote(openraft::raft::VoteRequest { vote, last_log_id, leadership_transfer })).unwrap()
            }
        ),
        (any::<u64>(), member(), any::<bool>()).prop_map(|(id, member, voter)| encode(&Request::AddMember {
            id,
            member,
            voter
        })
        .unwrap()),
        any::<u64>().prop_map(|id| encode(&Request::RemoveMember { id }).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| encode(&Request::App(b)).unwrap()),
        Just(encode(&Request::ReadIndex).unwrap()),
        (
            vote,
            prop::option::of(log_id),
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(vote, last_log_id, transfer, offset, data, done)| {
                let meta = SnapshotMeta { last_log_id, last_membership: StoredMembership::default() };
                encode(&Request::SnapshotChunk { vote, meta, transfer, offset, data, done }).unwrap()
            }),
        prop::option::of(".{0,30}").prop_map(|refused| {
            encode(&Response::SnapshotChunk(refused.map_or(Ok(()), |m| Err(RemoteError::Failed(m))))).unwrap()
        }),
        (any::<u64>(), prop::collection::vec(prop::option::of(kv), 0..3)).prop_map(|(revision, prev)| {
            let resp = CommandResponse { revision, succeeded: true, failed_compare: None, current: None, prev };
            encode(&Response::Write(Ok(resp))).unwrap()
        }),
        (prop::option::of(any::<u64>()), member()).prop_map(|(leader, member)| {
            let members = vec![MemberStatus { id: 1, member, voter: true, last_applied: leader }];
            encode(&Response::ClusterStatus(Ok(ClusterStatus { leader, members }))).unwrap()
        }),
        ".{0,30}".prop_map(|m| encode(&Response::App(Err(RemoteError::Failed(m)))).unwrap()),
    ]
}

/// One damage done to an encoded message.
#[derive(Clone, Debug)]
enum Damage {
    /// Replace the byte at (index modulo length).
    Set(usize, u8),
    /// Put a varint's marker of a long length and its bytes at an index: a
    /// forged length or count.
    Forge(usize, u64),
    /// Cut the message short.
    Truncate(usize),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<usize>(), prop_oneof![Just(u64::MAX), Just(1 << 40), Just(1 << 31), any::<u64>()])
            .prop_map(|(i, n)| Damage::Forge(i, n)),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let at = |i: usize| if bytes.is_empty() { 0 } else { i % (bytes.len() + 1) };
        match d {
            Damage::Set(i, b) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = *b;
                }
            }
            Damage::Forge(i, n) => {
                let i = at(*i);
                let mut forged = vec![253];
                forged.extend_from_slice(&n.to_le_bytes());
                bytes.splice(i..i, forged);
            }
            Damage::Truncate(i) => {
                let i = at(*i);
                bytes.truncate(i);
            }
            Damage::Insert(i, b) => {
                let i = at(*i);
                bytes.splice(i..i, b.iter().copied());
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_arbitrary_bytes_decode_without_panic_or_unbounded_allocation(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        decodes_within_bounds(&bytes)?;
    }

    #[test]
    fn fuzz_every_request_variant_with_arbitrary_contents(
        variant in 0u8..12,
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![variant];
        bytes.extend(body);
        decodes_within_bounds(&bytes)?;
    }

    #[test]
    fn fuzz_damaged_messages_decode_without_panic_or_unbounded_allocation(
        valid in valid_message(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        decodes_within_bounds(&valid)?;
        decodes_within_bounds(&apply(valid, &damages))?;
    }

    #[test]
    fn fuzz_valid_messages_round_trip(c in command()) {
        let bytes = encode(&Request::Write(c.clone())).unwrap();
        let back = match decode::<Request>(&bytes) {
            Ok(Request::Write(back)) => back,
            other => return Err(TestCaseError::fail(format!("decoded {other:?}"))),
        };
        prop_assert_eq!(back, c);
    }

    #[test]
    fn fuzz_frames_are_read_as_sent_and_a_header_allocates_nothing_it_did_not_receive(
        claimed in prop_oneof![any::<u32>(), 0u32..600, Just(u32::MAX), Just(MAX_FRAME as u32 + 1)],
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut wire = claimed.to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        let (read, largest) = largest_allocation(|| futures::executor::block_on(read_frame(&mut wire.as_slice())));
        let claimed = claimed as usize;
        match read {
            Ok(frame) => {
                prop_assert!(claimed <= body.len());
                prop_assert_eq!(&frame[..], &body[..claimed]);
            }
            Err(_) => prop_assert!(claimed > body.len() || claimed > MAX_FRAME),
        }
        prop_assert!(largest <= (64 << 10).max(2 * wire.len()), "a frame of {} bytes allocated {largest}", wire.len());
    }
}

#[test]
fn a_frame_header_claiming_4_gib_is_refused_before_allocating() {
    let wire = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    let (read, largest) = largest_allocation(|| futures::executor::block_on(read_frame(&mut &wire[..])));
    assert!(read.unwrap_err().to_string().contains("too large"));
    assert!(largest < 1024, "{largest}");
}

#[test]
fn a_frame_header_claiming_the_largest_frame_allocates_only_what_arrives() {
    // It allocated the claimed 512 MiB up front, for every stream a peer opened.
    let mut wire = (MAX_FRAME as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&[7; 100]);
    let (read, largest) = largest_allocation(|| futures::executor::block_on(read_frame(&mut wire.as_slice())));
    assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(largest <= 64 << 10, "{largest}");
}
