//! Files: reading inputs (stdin included), atomic writes, and finding the repo config.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use sealant_core::config::{CONFIG_FILE_NAME, RepoConfig};

use crate::failure::{Failure, Result, is_stdin};

/// Reads a whole input; `-` or the empty path is stdin.
pub fn read_input(path: &Path) -> Result<String> {
    let mut text = String::new();
    if is_stdin(path) {
        if std::io::stdin().is_terminal() {
            return Err(Failure::new(
                "<stdin>: expected input on stdin (pipe a manifest in, or name a FILE)",
            ));
        }
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::in_file(path, format!("cannot read: {e}")))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| Failure::in_file(path, read_error(&e)))?;
    }
    Ok(text)
}

pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Failure::in_file(path, read_error(&e)))
}

fn read_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::InvalidData => "is not UTF-8 text".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
        _ => format!("cannot read: {e}"),
    }
}

/// Writes `text` to `path` all at once: a temporary file beside it, renamed over it.
/// Keeps an existing file's permissions.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fail = |e: std::io::Error| Failure::in_file(path, format!("cannot write: {e}"));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::Permissions::from_mode(0o644)
        }
    };
    tmp.as_file().set_permissions(permissions).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Prints to stdout, or writes atomically to `write`.
pub fn emit(text: &str, write: Option<&Path>) -> Result<()> {
    match write {
        Some(path) => write_atomically(path, text),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Failure::new(format!("<stdout>: cannot write: {e}")))
        }
    }
}

/// A repo config and the directory its rules' paths are relative to.
pub struct FoundConfig {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub config: RepoConfig,
}

impl FoundConfig {
    /// `path` relative to the config's directory, `/`-separated, if it lies below it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let abs = std::path::absolute(path).ok()?;
        let rel = abs.strip_prefix(&self.dir).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }
}

/// The explicit config, or `.sealant.yaml` in the current directory or a parent.
pub fn find_config(explicit: Option<&Path>) -> Result<Option<FoundConfig>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::new(format!("cannot read the current directory: {e}")))?;
            match cwd
                .ancestors()
                .map(|d| d.join(CONFIG_FILE_NAME))
                .find(|p| p.is_file())
            {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| Failure::in_file(&path, read_error(&e)))?;
    let config = RepoConfig::parse(&text).map_err(|e| Failure::in_file(&path, e))?;
    let abs = std::path::absolute(&path).map_err(|e| Failure::in_file(&path, e))?;
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Some(FoundConfig { path, dir, config }))
}
