//! `seal check` exclusions: `--exclude GLOB` and `check.exclude` in `.sealant.yaml`. Each
//! pattern has `.gitignore` syntax (the same as `.sealantignore`): `legacy/` or `legacy`
//! excludes that folder and everything below it, `**/*.enc.yaml` any such file, a pattern
//! with a `/` other than at its end is anchored at the root it is relative to, `!pattern`
//! re-includes.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad glob '{glob}': {error}; fix the pattern (gitignore syntax)")]
pub struct BadExclude {
    pub glob: String,
    pub error: String,
}

/// Compiled exclusion patterns, relative to one root directory.
#[derive(Debug, Clone)]
pub struct Excludes {
    matcher: Gitignore,
}

impl Excludes {
    /// Compiles `patterns`, relative to `root`. An empty list excludes nothing.
    pub fn new<S: AsRef<str>>(root: &Path, patterns: &[S]) -> Result<Excludes, BadExclude> {
        let mut builder = GitignoreBuilder::new(root);
        for pattern in patterns {
            let pattern = pattern.as_ref();
            builder.add_line(None, pattern).map_err(|e| BadExclude {
                glob: pattern.to_owned(),
                error: glob_error(&e),
            })?;
        }
        let matcher = builder.build().map_err(|e| BadExclude {
            glob: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            error: glob_error(&e),
        })?;
        Ok(Excludes { matcher })
    }

    /// Whether `path` (below the root, or relative to it) or a folder above it is excluded.
    pub fn excludes(&self, path: &Path, is_dir: bool) -> bool {
        let rel = path.strip_prefix(self.matcher.path()).unwrap_or(path);
        let rel = rel.strip_prefix(".").unwrap_or(rel);
        if rel.as_os_str().is_empty() || rel.is_absolute() {
            return false;
        }
        self.matcher
            .matched_path_or_any_parents(rel, is_dir)
            .is_ignore()
    }
}

fn glob_error(e: &ignore::Error) -> String {
    match e {
        ignore::Error::Glob { err, .. } => err.clone(),
        ignore::Error::WithLineNumber { err, .. } | ignore::Error::WithPath { err, .. } => {
            glob_error(err)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        Excludes::new(Path::new("/repo"), patterns).unwrap()
    }

    #[test]
    fn folders_exclude_everything_below_them() {
        let e = ex(&["legacy/", "vendor"]);
        assert!(e.excludes(Path::new("legacy"), true));
        assert!(e.excludes(Path::new("legacy/a/b.yaml"), false));
        assert!(e.excludes(Path::new("/repo/apps/vendor/x.yaml"), false));
        assert!(!e.excludes(Path::new("legacy.yaml"), false));
        assert!(!e.excludes(Path::new("apps/db.yaml"), false));
        // A folder pattern (trailing /) does not match a file of that name.
        assert!(!e.excludes(Path::new("legacy"), false));
    }

    #[test]
    fn anchored_and_recursive_globs() {
        let e = ex(&["clusters/dev/*.yaml", "**/*.enc.yaml", "!keep.enc.yaml"]);
        assert!(e.excludes(Path::new("clusters/dev/a.yaml"), false));
        assert!(e.excludes(Path::new("./clusters/dev/a.yaml"), false));
        assert!(!e.excludes(Path::new("x/clusters/dev/a.yaml"), false));
        assert!(e.excludes(Path::new("a/b/c.enc.yaml"), false));
        assert!(!e.excludes(Path::new("a/keep.enc.yaml"), false));
        // Nothing outside the root is excluded.
        assert!(!e.excludes(Path::new("/elsewhere/clusters/dev/a.yaml"), false));
    }

    #[test]
    fn bad_globs_name_the_pattern() {
        let err = Excludes::new(Path::new("/repo"), &["ok/", "[z-a]"]).unwrap_err();
        assert_eq!(err.glob, "[z-a]");
        // The glob crate's reason alone, not ignore's wrapping of it.
        assert_eq!(err.error, "invalid range; \'z\' > \'a\'");
        assert!(err.to_string().starts_with("bad glob '[z-a]': "), "{err}");
        assert!(ex(&[]).excludes(Path::new("x"), false).eq(&false));
    }
}
