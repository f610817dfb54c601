//! Writing an OCI archive from a root filesystem directory: one gzip layer, a
//! config, a manifest and an index naming the reference. Deterministic: the same
//! directory gives the same digests.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{digest, media, Reference};
use crate::error::{IoContext, RuntimeError};

/// What the image runs by default.
#[derive(Clone, Debug, Default)]
pub struct ArchiveConfig {
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: String,
}

fn layer_tar(rootfs: &Path) -> Result<Vec<u8>, RuntimeError> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    let mut paths: Vec<_> = walk(rootfs)?;
    paths.sort();
    for p in paths {
        let rel = p.strip_prefix(rootfs).expect("under rootfs");
        if rel.as_os_str().is_empty() {
            continue;
        }
        b.append_path_with_name(&p, rel).at(&p)?;
    }
    b.into_inner().at(rootfs)
}

fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>, RuntimeError> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let ft = e.file_type().at(e.path())?;
        if ft.is_dir() {
            out.extend(walk(&e.path())?);
        } else {
            out.push(e.path());
        }
    }
    Ok(out)
}

fn add(b: &mut tar::Builder<std::fs::File>, name: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, bytes).at(name)
}

/// Write `out` as an OCI archive of `rootfs`, tagged `reference`.
pub fn write(rootfs: &Path, reference: &str, config: &ArchiveConfig, out: &Path) -> Result<(), RuntimeError> {
    let reference = Reference::parse(reference)?;
    let tar = layer_tar(rootfs)?;
    let diff_id = digest(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).at(out)?;
    let layer = gz.finish().at(out)?;
    let layer_digest = digest(&layer);
    let cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": config.cmd, "Env": config.env, "WorkingDir": config.working_dir},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let cfg = serde_json::to_vec(&cfg).expect("json");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::MANIFEST,
        "config": {"mediaType": media::CONFIG, "digest": digest(&cfg), "size": cfg.len()},
        "layers": [{"mediaType": media::LAYER_GZIP, "digest": layer_digest, "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media::MANIFEST,
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": reference.canonical(),
                "org.opencontainers.image.ref.name": reference.tag.clone().unwrap_or_default(),
            },
        }],
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    let file = std::fs::File::create(out).at(out)?;
    let mut b = tar::Builder::new(file);
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(&mut b, "index.json", &serde_json::to_vec(&index).expect("json"))?;
    for blob in [&cfg, &manifest, &layer] {
        add(&mut b, &format!("blobs/sha256/{}", digest(blob).trim_start_matches("sha256:")), blob)?;
    }
    b.into_inner().at(out)?.sync_all().at(out)
}
