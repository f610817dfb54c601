//! The per-node image store, in the OCI image layout:
//!
//! ```text
//! ROOT/blobs/sha256/<hex>     manifests, configs, layers — by digest
//! ROOT/refs/<reference>       the manifest digest a reference points to
//! ROOT/layers/<hex>/          a layer unpacked once, shared as an overlay lower dir
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{digest, Reference};
use crate::error::{IoContext, RuntimeError};

/// What a container takes from its image unless the pod spec overrides it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV, `K=V`.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: String,
    /// USER.
    pub user: String,
}

/// An image present in the store.
#[derive(Clone, Debug)]
pub struct LocalImage {
    /// The canonical reference it was found under.
    pub reference: String,
    /// The manifest's digest (the image id).
    pub manifest_digest: String,
    /// Layer digests, lowest first.
    pub layers: Vec<String>,
    /// The runtime part of its config.
    pub config: ImageConfig,
}

/// The store.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
}

fn bad(what: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::BadImage { what: what.to_string(), reason: reason.to_string() }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl ImageStore {
    /// Open (or create) a store at `root`.
    pub fn open(root: &Path) -> Result<ImageStore, RuntimeError> {
        for d in ["blobs/sha256", "refs", "layers"] {
            std::fs::create_dir_all(root.join(d)).at(root.join(d))?;
        }
        Ok(ImageStore { root: root.to_path_buf() })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, RuntimeError> {
        let hex =
            digest.strip_prefix("sha256:").ok_or_else(|| bad("digest", format!("unsupported digest {digest}")))?;
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("digest", format!("malformed digest {digest}")));
        }
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Store a blob; returns its digest. Writing is atomic.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, RuntimeError> {
        let d = digest(bytes);
        let path = self.blob_path(&d)?;
        if !path.exists() {
            let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
            std::fs::write(&tmp, bytes).at(&tmp)?;
            std::fs::rename(&tmp, &path).at(&path)?;
        }
        Ok(d)
    }

    /// Store a blob that must have the given digest.
    pub fn put_verified(&self, expected: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        let got = digest(bytes);
        if got != expected {
            return Err(bad("blob", format!("digest mismatch: expected {expected}, got {got}")));
        }
        self.put_blob(bytes).map(|_| ())
    }

    /// Read a blob.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let path = self.blob_path(digest)?;
        std::fs::read(&path).map_err(|_| bad("blob", format!("{digest} is not in the store")))
    }

    fn ref_path(&self, reference: &Reference) -> PathBuf {
        self.root.join("refs").join(reference.canonical().replace('/', "%"))
    }

    /// Point a reference at a manifest.
    pub fn tag(&self, reference: &Reference, manifest_digest: &str) -> Result<(), RuntimeError> {
        let path = self.ref_path(reference);
        std::fs::write(&path, manifest_digest).at(&path)
    }

    /// Every reference in the store with its manifest digest.
    pub fn list(&self) -> Result<Vec<(String, String)>, RuntimeError> {
        let dir = self.root.join("refs");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().replace('%', "/");
            let digest = std::fs::read_to_string(e.path()).at(e.path())?;
            out.push((name, digest.trim().to_string()));
        }
        out.sort();
        Ok(out)
    }

    /// Find an image by reference.
    pub fn resolve(&self, image: &str) -> Result<LocalImage, RuntimeError> {
        let reference = Reference::parse(image)?;
        let manifest_digest = match &reference.digest {
            Some(d) if self.blob_path(d)?.exists() => d.clone(),
            _ => std::fs::read_to_string(self.ref_path(&reference))
                .map(|s| s.trim().to_string())
                .map_err(|_| RuntimeError::ImageNotFound(reference.canonical()))?,
        };
        let manifest: Value = serde_json::from_slice(&self.blob(&manifest_digest)?).map_err(|e| bad("manifest", e))?;
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .ok_or_else(|| bad("manifest", "no layers"))?
            .iter()
            .filter_map(|l| l["digest"].as_str().map(String::from))
            .collect();
        let config_digest = manifest["config"]["digest"].as_str().ok_or_else(|| bad("manifest", "no config"))?;
        let config: Value = serde_json::from_slice(&self.blob(config_digest)?).map_err(|e| bad("config", e))?;
        let c = &config["config"];
        let config = ImageConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
            user: c["User"].as_str().unwrap_or("").to_string(),
        };
        Ok(LocalImage { reference: reference.canonical(), manifest_digest, layers, config })
    }

    /// The unpacked directories of an image's layers, lowest first; each layer is
    /// unpacked once.
    pub fn layer_dirs(&self, image: &LocalImage) -> Result<Vec<PathBuf>, RuntimeError> {
        image.layers.iter().map(|d| self.unpack(d)).collect()
    }

    fn unpack(&self, layer: &str) -> Result<PathBuf, RuntimeError> {
        let hex = layer.trim_start_matches("sha256:");
        let dir = self.root.join("layers").join(hex);
        if dir.join(".clusterd-unpacked").exists() {
            return Ok(dir);
        }
        let tmp = self.root.join("layers").join(format!(".tmp-{hex}-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&tmp).at(&tmp)?;
        let bytes = self.blob(layer)?;
        let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&bytes[..]))
        } else {
            Box::new(&bytes[..])
        };
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_unpack_xattrs(false);
        for entry in archive.entries().map_err(|e| bad("layer", e))? {
            let mut entry = entry.map_err(|e| bad("layer", e))?;
            let path = entry.path().map_err(|e| bad("layer", e))?.into_owned();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(hidden) = name.strip_prefix(".wh.") {
                // A whiteout hides a lower file: overlayfs spells that as a 0:0 char device.
                if hidden != ".wh..opq" {
                    let target = tmp.join(path.with_file_name(hidden));
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).at(parent)?;
                    }
                    nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
                        .map_err(|e| bad("layer whiteout", e))?;
                }
                continue;
            }
            entry.unpack_in(&tmp).map_err(|e| bad("layer", e))?;
        }
        std::fs::write(tmp.join(".clusterd-unpacked"), layer).at(&tmp)?;
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another unpack of the same layer won the race.
            Err(_) if dir.join(".clusterd-unpacked").exists() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => Err(RuntimeError::Io { path: dir, source: e }),
        }
    }

    /// Import an OCI archive (a tar of an OCI image layout); returns the
    /// references it tagged.
    pub fn import_archive(&self, archive: &Path) -> Result<Vec<String>, RuntimeError> {
        let file = std::fs::File::open(archive).at(archive)?;
        let mut tar = tar::Archive::new(file);
        let mut index: Option<Value> = None;
        for entry in tar.entries().at(archive)? {
            let mut entry = entry.at(archive)?;
            let path = entry.path().at(archive)?.to_string_lossy().trim_start_matches("./").to_string();
            if path == "index.json" {
                let mut s = String::new();
                entry.read_to_string(&mut s).at(archive)?;
                index = Some(serde_json::from_str(&s).map_err(|e| bad("index.json", e))?);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).at(archive)?;
                self.put_verified(&format!("sha256:{hex}"), &bytes)?;
            }
        }
        let index = index.ok_or_else(|| bad("archive", format!("{} has no index.json", archive.display())))?;
        let mut tagged = Vec::new();
        for m in index["manifests"].as_array().into_iter().flatten() {
            let digest = m["digest"].as_str().ok_or_else(|| bad("index.json", "manifest without digest"))?;
            let ann = &m["annotations"];
            let name =
                ann["io.containerd.image.name"].as_str().or_else(|| ann["org.opencontainers.image.ref.name"].as_str());
            if let Some(name) = name {
                let reference = Reference::parse(name)?;
                self.tag(&reference, digest)?;
                tagged.push(reference.canonical());
            }
        }
        Ok(tagged)
    }
}
