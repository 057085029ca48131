//! The Go peers: bench/go/*.go (stdlib only), built with `go build` into the target dir.
//!
//! The build is offline and root-safe: GOCACHE and GOPATH point under the target dir,
//! GOPROXY=off and GOTOOLCHAIN=local forbid downloads, and go.mod has no requirements.

use std::path::PathBuf;
use std::process::Command;

/// Where the Go sources are.
fn source_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/go"))
}

/// A directory under the target dir (next to this executable) for the Go build.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("target/release/x"));
    exe.parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("go-bench")
}

/// Builds the Go peers; the binary's path, or why there is none.
pub fn build() -> Result<PathBuf, String> {
    let version = Command::new("go")
        .arg("version")
        .output()
        .map_err(|e| format!("`go` is not installed ({e})"))?;
    if !version.status.success() {
        return Err("`go version` failed".into());
    }
    let dir = build_dir();
    let bin = dir.join("gobench");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(source_dir())
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on")
        .env("GOFLAGS", "")
        .output()
        .map_err(|e| format!("go build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    eprintln!(
        "built the Go peers with {} into {}",
        String::from_utf8_lossy(&version.stdout).trim(),
        bin.display()
    );
    Ok(bin)
}

/// The Go version, for the report.
pub fn version() -> Option<String> {
    let out = Command::new("go").arg("version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
