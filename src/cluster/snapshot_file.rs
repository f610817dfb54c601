//! The backup file of `clusterd snapshot save`: what it is, what it holds, and
//! proof that it arrived whole.
//!
//! ```text
//! "clusterd-snapshot\n"        magic (18 bytes): `head -1 FILE` says what it is
//! u32 BE                       format version (1)
//! u32 BE, JSON                 header: revision, keys, created, cluster, node
//! keys × entry                 u32 BE key length, key (UTF-8), u64 BE create
//!                              revision, u64 BE mod revision, u32 BE value
//!                              length, value
//! 32 bytes                     SHA-256 of everything before it
//! ```
//!
//! The header carries the number of entries, so a reader knows where the
//! entries end: a file cut short, with bytes left over, or with any byte
//! changed is refused — a changed byte either breaks the structure or the
//! checksum. Reading is streaming (a file is never held whole in memory).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use clusterd_raft::KeyValue;

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8] = b"clusterd-snapshot\n";

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The largest header, key or value a reader accepts: a longer length field
/// is a corrupted one (an object is far smaller).
const MAX_FIELD: usize = 64 << 20;

/// Key prefixes a snapshot leaves out (see [`keys::NOT_IN_SNAPSHOTS`]).
///
/// [`keys::NOT_IN_SNAPSHOTS`]: crate::objects::conventions::keys::NOT_IN_SNAPSHOTS
pub const LEFT_OUT: &[&str] = crate::objects::conventions::keys::NOT_IN_SNAPSHOTS;

/// Whether a key is left out of snapshots (and of restored stores).
pub fn left_out(key: &str) -> bool {
    LEFT_OUT.iter().any(|p| key.starts_with(p))
}

/// What a snapshot file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The store revision every entry was read at.
    pub revision: u64,
    /// The number of entries.
    pub keys: u64,
    /// When the snapshot was taken (RFC 3339).
    pub created: String,
    /// The cluster's identity: the SHA-256 fingerprint of its CA certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The node that served the snapshot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// A snapshot file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file does not start with [`MAGIC`].
    #[error("not a clusterd snapshot file (it does not start with \"clusterd-snapshot\")")]
    NotASnapshot,
    /// The file is of another format version.
    #[error("snapshot format version {found}; this clusterd reads version {VERSION}")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// The header does not decode.
    #[error("the snapshot header is corrupted: {0}")]
    Header(String),
    /// The file ends before its entries or checksum do.
    #[error("the snapshot file is truncated (it ends inside {0})")]
    Truncated(&'static str),
    /// A length field is beyond any real object.
    #[error("the snapshot file is corrupted: a {what} of {len} bytes")]
    Length {
        /// What the length is of.
        what: &'static str,
        /// The length read.
        len: usize,
    },
    /// A key is not UTF-8.
    #[error("the snapshot file is corrupted: a key is not UTF-8")]
    Key,
    /// Bytes follow the checksum.
    #[error("the snapshot file is corrupted: {0} byte(s) after its checksum")]
    Trailing(u64),
    /// The checksum does not match the contents.
    #[error("the snapshot file is corrupted: its SHA-256 is {computed}, its checksum says {recorded}")]
    Checksum {
        /// The checksum at the end of the file.
        recorded: String,
        /// The SHA-256 of the contents.
        computed: String,
    },
    /// The writer got another number of entries than its header announced.
    #[error("the snapshot holds {written} entries, its header announced {announced}")]
    Count {
        /// Entries written.
        written: u64,
        /// Entries announced.
        announced: u64,
    },
}

/// Writes a snapshot file: [`Writer::new`] with the header, [`Writer::entry`]
/// for each key, [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    announced: u64,
    written: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    /// Start a file with its magic, version and header.
    pub fn new(out: W, header: &Header) -> Result<Self, FileError> {
        let mut w = Writer { out, hash: Sha256::new(), announced: header.keys, written: 0, bytes: 0 };
        let json = serde_json::to_vec(header).map_err(|e| FileError::Header(e.to_string()))?;
        w.put(MAGIC)?;
        w.put(&VERSION.to_be_bytes())?;
        w.put(&(json.len() as u32).to_be_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(self.out.write_all(bytes)?)
    }

    /// Add one key.
    pub fn entry(&mut self, kv: &KeyValue) -> Result<(), FileError> {
        if self.written == self.announced {
            return Err(FileError::Count { written: self.written + 1, announced: self.announced });
        }
        self.put(&(kv.key.len() as u32).to_be_bytes())?;
        self.put(kv.key.as_bytes())?;
        self.put(&kv.create_revision.to_be_bytes())?;
        self.put(&kv.mod_revision.to_be_bytes())?;
        self.put(&(kv.value.len() as u32).to_be_bytes())?;
        self.put(&kv.value)?;
        self.written += 1;
        Ok(())
    }

    /// Append the checksum; returns the output, the file's size and its checksum (hex).
    pub fn finish(mut self) -> Result<(W, u64, String), FileError> {
        if self.written != self.announced {
            return Err(FileError::Count { written: self.written, announced: self.announced });
        }
        let sum = self.hash.finalize_reset();
        self.out.write_all(&sum)?;
        self.out.flush()?;
        Ok((self.out, self.bytes + sum.len() as u64, hex::encode(sum)))
    }
}

/// A snapshot file being written to disk: written as `FILE.part`, synced and
/// renamed to `FILE` by [`FileSink::finish`]; the part is removed if it is
/// dropped unfinished, so `FILE` is always whole.
pub struct FileSink {
    part: PathBuf,
    path: PathBuf,
    writer: Option<Writer<BufWriter<File>>>,
}

impl FileSink {
    /// Start writing `path` with its header.
    pub fn create(path: &Path, header: &Header) -> Result<Self, FileError> {
        let mut part = path.as_os_str().to_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let out = File::create(&part)?;
        let mut sink = FileSink { part, path: path.to_path_buf(), writer: None };
        sink.writer = Some(Writer::new(BufWriter::new(out), header)?);
        Ok(sink)
    }

    /// Add one key.
    pub fn entry(&mut self, kv: &KeyValue) -> Result<(), FileError> {
        self.writer.as_mut().expect("unfinished").entry(kv)
    }

    /// Append the checksum, sync and put the file in place; returns its size and checksum.
    pub fn finish(mut self) -> Result<(u64, String), FileError> {
        let (out, size, checksum) = self.writer.take().expect("unfinished").finish()?;
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        std::fs::rename(&self.part, &self.path)?;
        Ok((size, checksum))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Nothing to remove once finished (the part was renamed).
        let _ = std::fs::remove_file(&self.part);
    }
}

/// Reads a snapshot file: [`Reader::new`] reads the header, [`Reader::entry`]
/// each key, [`Reader::finish`] checks the checksum and the end.
pub struct Reader<R: Read> {
    input: R,
    hash: Sha256,
    header: Header,
    read: u64,
    bytes: u64,
}

impl<R: Read> Reader<R> {
    /// Open a file: check its magic and version, read its header.
    pub fn new(input: R) -> Result<Self, FileError> {
        let mut r = Reader { input, hash: Sha256::new(), header: placeholder(), read: 0, bytes: 0 };
        let mut magic = [0u8; MAGIC.len()];
        match r.fill(&mut magic) {
            Ok(()) if magic == MAGIC => {}
            Ok(()) | Err(FileError::Truncated(_)) => return Err(FileError::NotASnapshot),
            Err(e) => return Err(e),
        }
        let version = r.u32("the header")?;
        if version != VERSION {
            return Err(FileError::Version { found: version });
        }
        let len = r.len("header")?;
        let json = r.bytes(len, "the header")?;
        r.header = serde_json::from_slice(&json).map_err(|e| FileError::Header(e.to_string()))?;
        Ok(r)
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next key; `None` after the last one the header announced.
    pub fn entry(&mut self) -> Result<Option<KeyValue>, FileError> {
        if self.read == self.header.keys {
            return Ok(None);
        }
        const WHERE: &str = "an entry";
        let len = self.len("key")?;
        let key = String::from_utf8(self.bytes(len, WHERE)?).map_err(|_| FileError::Key)?;
        let create_revision = self.u64(WHERE)?;
        let mod_revision = self.u64(WHERE)?;
        let len = self.len("value")?;
        let value = self.bytes(len, WHERE)?;
        self.read += 1;
        Ok(Some(KeyValue { key, value, create_revision, mod_revision }))
    }

    /// After the last entry: check the checksum and that nothing follows it.
    /// Returns the file's size and checksum (hex).
    pub fn finish(mut self) -> Result<(u64, String), FileError> {
        while self.entry()?.is_some() {}
        let computed = self.hash.finalize_reset();
        let mut recorded = [0u8; 32];
        read_exact(&mut self.input, &mut recorded, "the checksum")?;
        let trailing = io::copy(&mut self.input, &mut io::sink())?;
        if trailing > 0 {
            return Err(FileError::Trailing(trailing));
        }
        if computed.as_slice() != recorded {
            return Err(FileError::Checksum { recorded: hex::encode(recorded), computed: hex::encode(computed) });
        }
        Ok((self.bytes + 32, hex::encode(computed)))
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FileError> {
        read_exact(&mut self.input, buf, "the header")?;
        self.hash.update(&*buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn bytes(&mut self, len: usize, place: &'static str) -> Result<Vec<u8>, FileError> {
        let mut buf = vec![0u8; len];
        read_exact(&mut self.input, &mut buf, place)?;
        self.hash.update(&buf);
        self.bytes += len as u64;
        Ok(buf)
    }

    fn u32(&mut self, place: &'static str) -> Result<u32, FileError> {
        let b = self.bytes(4, place)?;
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, place: &'static str) -> Result<u64, FileError> {
        let b = self.bytes(8, place)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn len(&mut self, what: &'static str) -> Result<usize, FileError> {
        let place = if what == "header" { "the header" } else { "an entry" };
        let len = self.u32(place)? as usize;
        if len > MAX_FIELD {
            return Err(FileError::Length { what, len });
        }
        Ok(len)
    }
}

fn placeholder() -> Header {
    Header { revision: 0, keys: 0, created: String::new(), cluster: String::new(), node: String::new() }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], place: &'static str) -> Result<(), FileError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FileError::Truncated(place),
        _ => FileError::Io(e),
    })
}

/// What `snapshot status` reports of a verified file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The file's header.
    pub header: Header,
    /// The file's size in bytes.
    pub size: u64,
    /// Its SHA-256 (hex), checked.
    pub checksum: String,
}

/// Read a whole file, handing each entry to `each`, and check it: its
/// structure, its entry count and its checksum.
pub fn verify(input: impl Read, mut each: impl FnMut(KeyValue)) -> Result<Summary, FileError> {
    let mut r = Reader::new(input)?;
    while let Some(kv) = r.entry()? {
        each(kv);
    }
    let header = r.header().clone();
    let (size, checksum) = r.finish()?;
    Ok(Summary { header, size, checksum })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create: u64, modified: u64) -> KeyValue {
        KeyValue { key: key.into(), value: value.as_bytes().to_vec(), create_revision: create, mod_revision: modified }
    }

    fn sample() -> (Header, Vec<KeyValue>) {
        let kvs = vec![
            kv("/clusterd/config", "{}", 2, 2),
            kv("/registry/deployments/default/web", "{\"kind\":\"Deployment\"}", 7, 12),
            kv("/registry/empty", "", 9, 9),
        ];
        let header = Header {
            revision: 14,
            keys: kvs.len() as u64,
            created: "2026-12-01T03:00:00Z".into(),
            cluster: "ab".repeat(32),
            node: "n1".into(),
        };
        (header, kvs)
    }

    fn encode(header: &Header, kvs: &[KeyValue]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), header).unwrap();
        for kv in kvs {
            w.entry(kv).unwrap();
        }
        let (bytes, size, _) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        bytes
    }

    #[test]
    fn a_file_reads_back_what_was_written() {
        let (header, kvs) = sample();
        let bytes = encode(&header, &kvs);
        assert!(bytes.starts_with(MAGIC));
        let mut got = Vec::new();
        let summary = verify(&bytes[..], |kv| got.push(kv)).unwrap();
        assert_eq!(got, kvs);
        assert_eq!(summary.header, header);
        assert_eq!(summary.size, bytes.len() as u64);
        assert_eq!(summary.checksum, hex::encode(Sha256::digest(&bytes[..bytes.len() - 32])));
    }

    #[test]
    fn an_empty_store_makes_a_valid_file() {
        let header = Header { keys: 0, ..sample().0 };
        let bytes = encode(&header, &[]);
        assert_eq!(verify(&bytes[..], |_| panic!("no entries")).unwrap().header, header);
    }

    /// The refusal of a damaged file, as its error's variant name.
    fn refusal(bytes: &[u8]) -> String {
        let e = verify(bytes, |_| {}).expect_err("a damaged file is refused");
        format!("{e:?}").split(['(', ' ', '{']).next().unwrap().to_string()
    }

    #[test]
    fn damaged_files_are_refused() {
        let (header, kvs) = sample();
        let good = encode(&header, &kvs);
        let n = good.len();
        let header_end = MAGIC.len() + 8 + serde_json::to_vec(&header).unwrap().len();
        let flip = |at: usize| {
            let mut b = good.clone();
            b[at] ^= 0x01;
            b
        };
        let mut bigger_version = good.clone();
        bigger_version[MAGIC.len() + 3] = 2;
        let mut long_key = good.clone();
        long_key[header_end..header_end + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut trailing = good.clone();
        trailing.push(0);
        let table: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "NotASnapshot"),
            ("another file", b"hello world, this is not it".to_vec(), "NotASnapshot"),
            ("magic flipped", flip(0), "NotASnapshot"),
            ("newer version", bigger_version, "Version"),
            ("header byte flipped", flip(MAGIC.len() + 10), "Header"),
            ("cut in the header", good[..MAGIC.len() + 6].to_vec(), "Truncated"),
            ("cut in an entry", good[..header_end + 10].to_vec(), "Truncated"),
            ("cut in the checksum", good[..n - 5].to_vec(), "Truncated"),
            ("checksum missing", good[..n - 32].to_vec(), "Truncated"),
            ("key length absurd", long_key, "Length"),
            ("value byte flipped", flip(n - 40), "Checksum"),
            ("checksum byte flipped", flip(n - 1), "Checksum"),
            ("byte after the checksum", trailing, "Trailing"),
        ];
        for (what, bytes, want) in table {
            assert_eq!(refusal(&bytes), want, "{what}");
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (header, kvs) = sample();
        let good = encode(&header, &kvs);
        for at in 0..good.len() {
            let mut b = good.clone();
            b[at] ^= 0x40;
            assert!(verify(&b[..], |_| {}).is_err(), "a flipped byte at {at} went unnoticed");
        }
        for len in 0..good.len() {
            assert!(verify(&good[..len], |_| {}).is_err(), "a file cut at {len} went unnoticed");
        }
    }

    #[test]
    fn a_writer_holds_to_its_announced_count() {
        let (header, kvs) = sample();
        let mut w = Writer::new(Vec::new(), &header).unwrap();
        w.entry(&kvs[0]).unwrap();
        assert!(matches!(w.finish(), Err(FileError::Count { written: 1, announced: 3 })));
        let mut w = Writer::new(Vec::new(), &Header { keys: 1, ..header }).unwrap();
        w.entry(&kvs[0]).unwrap();
        assert!(matches!(w.entry(&kvs[1]), Err(FileError::Count { written: 2, announced: 1 })));
    }

    #[test]
    fn only_node_registrations_are_left_out() {
        let table = [
            ("/clusterd/members/n1", true),
            ("/clusterd/members/", true),
            ("/clusterd/pki/ca", false),
            ("/clusterd/config", false),
            ("/registry/minions/n1", false),
            ("/registry/deployments/default/web", false),
        ];
        for (key, out) in table {
            assert_eq!(left_out(key), out, "{key}");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let e = FileError::Truncated("an entry");
        assert_eq!(e.to_string(), "the snapshot file is truncated (it ends inside an entry)");
        let e = FileError::Checksum { recorded: "aa".into(), computed: "bb".into() };
        assert_eq!(e.to_string(), "the snapshot file is corrupted: its SHA-256 is bb, its checksum says aa");
    }
}
