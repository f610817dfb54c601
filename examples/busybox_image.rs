//! Builds the test images from Debian's busybox-static: OCI archives
//! `target/images/busybox-v1.tar` and `busybox-v2.tar`, tagged
//! `clusterd.local/busybox:v1` and `:v2`, identical but for `/VERSION`.
//!
//! `make images` runs it: `cargo run --example busybox_image -- OUT_DIR`.

use std::os::unix::fs::symlink;
use std::path::Path;

use clusterd_runtime::image::archive::{self, ArchiveConfig};

fn rootfs(dir: &Path, version: &str) -> std::io::Result<()> {
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev", "root", "var/www", "usr/bin", "usr/sbin", "sbin"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))?;
    let list = std::process::Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "busybox" {
            symlink("busybox", dir.join("bin").join(applet))?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(dir.join("VERSION"), format!("{version}\n"))?;
    std::fs::write(dir.join("www/index.html"), format!("hello from busybox {version}\n"))?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "target/images".into());
    let out = Path::new(&out);
    for version in ["v1", "v2"] {
        let tmp = tempfile::tempdir()?;
        rootfs(tmp.path(), version)?;
        let config = ArchiveConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: "/".into(),
        };
        let path = out.join(format!("busybox-{version}.tar"));
        archive::write(tmp.path(), &format!("clusterd.local/busybox:{version}"), &config, &path)?;
        println!("{}", path.display());
    }
    Ok(())
}
