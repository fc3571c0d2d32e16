//! The CLI's one error type: a single line that names the file and says what to fix.

use std::fmt;
use std::path::Path;

pub struct Failure {
    message: String,
    /// 1 for bad input or a failed operation, 2 for a usage error.
    pub exit_code: u8,
}

pub type Result<T> = std::result::Result<T, Failure>;

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// A malformed flag value: exit code 2, like clap's own usage errors.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: 2,
        }
    }

    /// `FILE: message`.
    pub fn in_file(path: &Path, message: impl fmt::Display) -> Self {
        Failure::new(format!("{}: {message}", display_path(path)))
    }

    /// `FILE:LINE: message`.
    pub fn at_line(path: &Path, line: usize, message: impl fmt::Display) -> Self {
        Failure::new(format!("{}:{line}: {message}", display_path(path)))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever a lower layer produced.
        f.write_str(&self.message.replace('\n', " "))
    }
}

/// `-` and the empty path stand for stdin.
pub fn display_path(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-" || path.as_os_str().is_empty()
}
