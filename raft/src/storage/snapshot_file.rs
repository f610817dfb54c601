//! Snapshots kept as files beside the database, written and read record by record.
//!
//! A snapshot used to be one RocksDB value: building it held the whole state in
//! memory twice (the records, then their encoding), and compaction
//! decompressed those tens of megabytes again and again. Now the state is
//! streamed from a RocksDB snapshot into a file, and only the file's record
//! (which snapshot, which file, its size and checksum) lives in RocksDB.
//!
//! The file: an 8-byte magic, then records `tag u8 | key length u32 | value
//! length u32 | key | value` (big-endian lengths), then an end tag, the record
//! count (u64) and a CRC-32 of every byte before it. A reader checks the
//! framing, the count, the checksum and that nothing follows: a truncated or
//! corrupted file is refused, never read as a smaller state.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CDSNAP01";
const TAG_END: u8 = 0;
/// A key of the `kv` family with its stored value.
const TAG_KV: u8 = 1;
/// A unique-id record of the `kv_meta` family.
const TAG_UNIQUE: u8 = 2;
/// No key or value in the store is near this; a larger length is corruption,
/// refused before anything is allocated for it.
const MAX_FIELD: u32 = 256 << 20;

/// The directory inside the database directory that holds its snapshots.
/// Inside, so a data directory moved aside or removed takes them along.
const DIR: &str = "snapshots";
const SUFFIX: &str = ".snap";
const PART: &str = ".part";

/// One record of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// A `kv` key and its stored value, as stored.
    Kv(Vec<u8>, Vec<u8>),
    /// A unique-id key and its encoded response, as stored.
    Unique(Vec<u8>, Vec<u8>),
}

fn corrupt(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file: {what}"))
}

/// Writes a snapshot file record by record; [`SnapshotWriter::finish`] makes it durable.
pub(crate) struct SnapshotWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    records: u64,
    size: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub(crate) fn new(out: W) -> io::Result<Self> {
        let mut w = SnapshotWriter { out, crc: crc32fast::Hasher::new(), records: 0, size: 0 };
        w.put(MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    pub(crate) fn write(&mut self, record: &Record) -> io::Result<()> {
        let (tag, k, v) = match record {
            Record::Kv(k, v) => (TAG_KV, k, v),
            Record::Unique(k, v) => (TAG_UNIQUE, k, v),
        };
        let len = |b: &Vec<u8>| {
            u32::try_from(b.len()).ok().filter(|l| *l <= MAX_FIELD).ok_or_else(|| corrupt("a field too long"))
        };
        let (kl, vl) = (len(k)?, len(v)?);
        self.put(&[tag])?;
        self.put(&kl.to_be_bytes())?;
        self.put(&vl.to_be_bytes())?;
        self.put(k)?;
        self.put(v)?;
        self.records += 1;
        Ok(())
    }

    /// Write the end (count and checksum) and hand back the output, the file's
    /// size and its checksum.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64, u32)> {
        self.put(&[TAG_END])?;
        let count = self.records.to_be_bytes();
        self.put(&count)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.size + 4, crc))
    }
}

/// Reads a snapshot file record by record, checking it as it goes; the end is
/// reported only after the count and checksum matched and nothing followed.
pub(crate) struct SnapshotReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    records: u64,
    /// The checked checksum, once the end is read.
    done: Option<u32>,
}

impl<R: Read> SnapshotReader<R> {
    pub(crate) fn new(input: R) -> io::Result<Self> {
        let mut r = SnapshotReader { input, crc: crc32fast::Hasher::new(), records: 0, done: None };
        let mut magic = [0u8; 8];
        r.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(corrupt("not a snapshot file of this format"));
        }
        Ok(r)
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => corrupt("truncated"),
            _ => e,
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn field(&mut self, len: u32) -> io::Result<Vec<u8>> {
        if len > MAX_FIELD {
            return Err(corrupt(format!("a field of {len} bytes")));
        }
        let mut v = vec![0u8; len as usize];
        self.take(&mut v)?;
        Ok(v)
    }

    /// The file's checksum, once its end is read and checked.
    pub(crate) fn checksum(&self) -> Option<u32> {
        self.done
    }

    /// The next record; `None` once the end is read and checked.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.done.is_some() {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        if tag[0] == TAG_END {
            let mut count = [0u8; 8];
            self.take(&mut count)?;
            let want = self.crc.clone().finalize();
            let mut crc = [0u8; 4];
            self.input.read_exact(&mut crc).map_err(|_| corrupt("truncated"))?;
            if u64::from_be_bytes(count) != self.records {
                return Err(corrupt("record count does not match"));
            }
            if u32::from_be_bytes(crc) != want {
                return Err(corrupt("checksum does not match"));
            }
            if self.input.read(&mut [0u8; 1])? != 0 {
                return Err(corrupt("bytes after the end"));
            }
            self.done = Some(want);
            return Ok(None);
        }
        let mut lens = [0u8; 8];
        self.take(&mut lens)?;
        let kl = u32::from_be_bytes(lens[..4].try_into().expect("4 bytes"));
        let vl = u32::from_be_bytes(lens[4..].try_into().expect("4 bytes"));
        let (k, v) = (self.field(kl)?, self.field(vl)?);
        self.records += 1;
        match tag[0] {
            TAG_KV => Ok(Some(Record::Kv(k, v))),
            TAG_UNIQUE => Ok(Some(Record::Unique(k, v))),
            other => Err(corrupt(format!("unknown record tag {other}"))),
        }
    }
}

/// The data of a snapshot as openraft hands it around: a file of the store,
/// a file received from a peer, or bytes. Each is read as a stream.
pub struct SnapshotData(Source);

enum Source {
    File(BufReader<File>),
    /// A file spooled from a peer's pieces: an install takes the file itself
    /// (renamed into place) rather than a copy.
    Received(BufReader<File>, PathBuf),
    Bytes(Cursor<Vec<u8>>),
}

impl SnapshotData {
    /// A snapshot held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SnapshotData(Source::Bytes(Cursor::new(bytes)))
    }

    /// A snapshot file.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        Ok(SnapshotData(Source::File(BufReader::with_capacity(1 << 16, File::open(path)?))))
    }

    /// A snapshot received from a peer into `path`, a file of the store's
    /// snapshot directory that its install may take.
    pub(crate) fn received(path: PathBuf) -> io::Result<Self> {
        let file = BufReader::with_capacity(1 << 16, File::open(&path)?);
        Ok(SnapshotData(Source::Received(file, path)))
    }

    /// The received file this data reads, if it is one.
    pub(crate) fn received_path(&self) -> Option<&Path> {
        match &self.0 {
            Source::Received(_, path) => Some(path),
            _ => None,
        }
    }

    /// The snapshot's size in bytes.
    pub(crate) fn size(&self) -> io::Result<u64> {
        match &self.0 {
            Source::File(f) | Source::Received(f, _) => Ok(f.get_ref().metadata()?.len()),
            Source::Bytes(c) => Ok(c.get_ref().len() as u64),
        }
    }

    /// The whole snapshot as bytes (to send it whole to a peer).
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self.0 {
            Source::Bytes(c) => Ok(c.into_inner()),
            Source::File(mut f) | Source::Received(mut f, _) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }
}

impl Read for SnapshotData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Source::File(f) | Source::Received(f, _) => f.read(buf),
            Source::Bytes(c) => c.read(buf),
        }
    }
}

impl fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::File(_) => f.write_str("SnapshotData(file)"),
            Source::Received(_, path) => write!(f, "SnapshotData(received {})", path.display()),
            Source::Bytes(c) => write!(f, "SnapshotData({} bytes)", c.get_ref().len()),
        }
    }
}

/// The snapshot directory of one store.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// The snapshot directory of the database at `db`, created if missing.
    pub(crate) fn open(db: &Path) -> io::Result<Self> {
        let dir = Self::of(db);
        fs::create_dir_all(&dir)?;
        Ok(SnapshotDir { dir })
    }

    /// Where the database at `db` keeps its snapshots. Files ending in
    /// `.part` there are removed when the store opens.
    pub(crate) fn of(db: &Path) -> PathBuf {
        db.join(DIR)
    }

    /// The names of the files in the snapshot directory of the database at
    /// `db`, sorted (for tests).
    #[cfg(test)]
    pub(crate) fn file_names(db: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(Self::of(db))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Whether `path` is a file of this directory.
    pub(crate) fn holds(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
    }

    /// Take the finished, synced file `from` (of this directory) as snapshot
    /// file `file`: renamed, the directory synced.
    pub(crate) fn adopt(&self, from: &Path, file: &str) -> io::Result<()> {
        fs::rename(from, self.dir.join(file))?;
        File::open(&self.dir)?.sync_all()
    }

    /// The file name of snapshot `id`.
    pub(crate) fn file_name(id: &str) -> String {
        format!("{id}{SUFFIX}")
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Write a new snapshot file `file` from `records`: to a `.part`, synced,
    /// then renamed and the directory synced. Returns its size and checksum.
    pub(crate) fn write<I>(&self, file: &str, records: I) -> io::Result<(u64, u32)>
    where
        I: IntoIterator<Item = io::Result<Record>>,
    {
        let part = self.dir.join(format!("{file}{PART}"));
        let result = (|| -> io::Result<(u64, u32)> {
            let out = BufWriter::with_capacity(1 << 16, SyncedInSteps::new(File::create(&part)?));
            let mut w = SnapshotWriter::new(out)?;
            for r in records {
                w.write(&r?)?;
            }
            let (out, size, crc) = w.finish()?;
            out.into_inner().map_err(|e| e.into_error())?.file.sync_all()?;
            Ok((size, crc))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        let (size, crc) = result?;
        self.adopt(&part, file)?;
        Ok((size, crc))
    }

    /// Remove every snapshot file but `keep`; with `parts`, also unfinished
    /// `.part` files (at open only: a build may be writing one).
    pub(crate) fn remove_others(&self, keep: Option<&str>, parts: bool) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let leftover = (name.ends_with(SUFFIX) && Some(name.as_str()) != keep) || (parts && name.ends_with(PART));
            if leftover {
                tracing::debug!(file = %name, "removing an unreferenced snapshot file");
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// A file written with its data synced every [`SYNC_STEP`] bytes. A snapshot
/// file is tens of megabytes written at disk speed; synced only at its end, the
/// whole of it went to disk at once, and the Raft log's own syncs (on the same
/// filesystem journal) waited behind it: writes in flight stalled for hundreds
/// of milliseconds whenever a snapshot was built.
struct SyncedInSteps {
    file: File,
    unsynced: u64,
}

/// How much of a snapshot file is written between two syncs.
const SYNC_STEP: u64 = 4 << 20;

impl SyncedInSteps {
    fn new(file: File) -> Self {
        SyncedInSteps { file, unsynced: 0 }
    }
}

impl Write for SyncedInSteps {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_STEP {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::Kv(b"/a".to_vec(), b"one".to_vec()),
            Record::Kv(b"/b".to_vec(), vec![]),
            Record::Unique(b"unique/1".to_vec(), vec![7; 300]),
        ]
    }

    fn encoded() -> Vec<u8> {
        let mut w = SnapshotWriter::new(Vec::new()).unwrap();
        for r in records() {
            w.write(&r).unwrap();
        }
        let (bytes, size, _) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        bytes
    }

    fn read_all(bytes: &[u8]) -> io::Result<Vec<Record>> {
        let mut r = SnapshotReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    #[test]
    fn a_snapshot_file_reads_back_as_written() {
        assert_eq!(read_all(&encoded()).unwrap(), records());
    }

    #[test]
    fn a_truncated_or_corrupted_file_is_refused_never_read_short() {
        let good = encoded();
        // Every truncation, including one that ends exactly after a record.
        for len in 0..good.len() {
            let err = read_all(&good[..len]).expect_err("a truncated file is refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "cut at {len}: {err}");
        }
        // Every single flipped byte.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(read_all(&bad).is_err(), "a flipped byte at {at} is noticed");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err(), "bytes after the end are refused");
    }

    #[test]
    fn files_are_written_whole_and_leftovers_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path()).unwrap();
        let (size, _) = dir.write("1-a.snap", records().into_iter().map(Ok)).unwrap();
        assert_eq!(fs::metadata(dir.path("1-a.snap")).unwrap().len(), size);
        let failed = dir.write("2-b.snap", [Ok(records()[0].clone()), Err(io::Error::other("disk"))]);
        assert!(failed.is_err());
        assert!(!dir.path("2-b.snap").exists() && !dir.path("2-b.snap.part").exists(), "a failed write leaves nothing");
        fs::write(dir.path("3-c.snap.part"), b"half").unwrap();
        fs::write(dir.path("0-old.snap"), b"old").unwrap();
        dir.remove_others(Some("1-a.snap"), false).unwrap();
        assert!(!dir.path("0-old.snap").exists());
        assert!(dir.path("3-c.snap.part").exists(), "a build's part survives outside open");
        dir.remove_others(Some("1-a.snap"), true).unwrap();
        assert!(!dir.path("3-c.snap.part").exists());
        let data = SnapshotData::open(&dir.path("1-a.snap")).unwrap();
        assert_eq!(read_all(&data.into_bytes().unwrap()).unwrap(), records());
    }
}
