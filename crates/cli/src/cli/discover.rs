//! The default store, found as git finds `.git`: the nearest `.cairn` directory from the
//! working directory up. `--store` / `CAIRN_STORE` override it.
//!
//! Where there is none, a command that writes creates `./.cairn` and says so on stderr (once:
//! the next command finds it); a command that only looks creates nothing and fails with
//! [`Error::NoStore`], naming the directories it looked in.
//!
//! `CAIRN_CEILING_DIRECTORIES` (absolute paths separated by `:`, like
//! `GIT_CEILING_DIRECTORIES`) stops the search before it moves up into one of them: the
//! tests use it so that a stray `/tmp/.cairn` cannot be found from a temporary directory.

use std::path::{Path, PathBuf};

use super::output::say;
use cairn::error::{Error, Result};

/// The directory name a store has.
pub const DIR: &str = ".cairn";

/// The environment variable naming directories the search does not move up into.
pub const CEILINGS: &str = "CAIRN_CEILING_DIRECTORIES";

/// What the search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The nearest store directory (`…/.cairn`).
    Store(PathBuf),
    /// None: the directories looked in, nearest first.
    Nothing(Vec<PathBuf>),
}

/// Looks for `.cairn` in `start` and each of its parents, not moving up into any of
/// `ceilings`.
pub fn nearest(start: &Path, ceilings: &[PathBuf]) -> Found {
    let mut looked_in = Vec::new();
    let mut dir = Some(start);
    while let Some(d) = dir {
        looked_in.push(d.to_path_buf());
        let candidate = d.join(DIR);
        if candidate.is_dir() {
            return Found::Store(candidate);
        }
        dir = d.parent().filter(|p| !ceilings.iter().any(|c| c == p));
    }
    Found::Nothing(looked_in)
}

/// The ceilings `CAIRN_CEILING_DIRECTORIES` names (relative and empty entries are ignored, as
/// git ignores them).
pub fn ceilings_from_env() -> Vec<PathBuf> {
    std::env::var_os(CEILINGS)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| p.is_absolute())
                .collect()
        })
        .unwrap_or_default()
}

/// The URL of the default store seen from the working directory. With `may_create`, where
/// there is none, `./.cairn` is created and announced on stderr; without, that is
/// [`Error::NoStore`].
pub fn default_store(may_create: bool) -> Result<String> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Config(format!("cannot read the current directory: {e}")))?;
    let dir = match nearest(&cwd, &ceilings_from_env()) {
        Found::Store(dir) => dir,
        Found::Nothing(looked_in) if !may_create => {
            return Err(Error::NoStore {
                named: None,
                looked_in,
            })
        }
        Found::Nothing(_) => {
            let dir = cwd.join(DIR);
            match std::fs::create_dir(&dir) {
                Ok(()) => say!("cairn: created cairn store at {}", dir.display()),
                // Another command created it meanwhile: it said so.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => {
                    return Err(Error::Config(format!(
                        "cannot create a cairn store at {}: {e}",
                        dir.display()
                    )))
                }
            }
            dir
        }
    };
    store_url(&dir)
}

/// The `file://` URL of the store directory `dir` (absolute), percent-encoded so that a `#`,
/// `?` or `%` in a directory's name reads back as itself.
fn store_url(dir: &Path) -> Result<String> {
    ::url::Url::from_file_path(dir)
        .map(|u| u.to_string())
        .map_err(|()| {
            Error::Config(format!(
                "the cairn store at {} has no absolute path",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_store_up_the_tree_is_found() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("top");
        let deep = top.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let ceiling = [root.path().to_path_buf()];
        assert_eq!(
            nearest(&deep, &ceiling),
            Found::Nothing(vec![deep.clone(), top.join("a"), top.clone()])
        );
        std::fs::create_dir(top.join(DIR)).unwrap();
        assert_eq!(nearest(&deep, &ceiling), Found::Store(top.join(DIR)));
        std::fs::create_dir(top.join("a").join(DIR)).unwrap();
        assert_eq!(
            nearest(&deep, &ceiling),
            Found::Store(top.join("a").join(DIR))
        );
    }

    #[test]
    fn the_default_stores_url_names_its_directory_whatever_the_directory_is_called() {
        for name in ["plain", "C# and ?x", "a%20b", "sp ace", "100%"] {
            let dir = Path::new("/home/u").join(name).join(DIR);
            let url = store_url(&dir).unwrap();
            assert_eq!(
                cairn::store::url::parse(&url).unwrap(),
                cairn::store::url::Location::Directory(dir.clone()),
                "{url}"
            );
        }
    }

    #[test]
    fn a_file_named_cairn_is_not_a_store() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("top");
        std::fs::create_dir(&top).unwrap();
        std::fs::write(top.join(DIR), b"").unwrap();
        assert_eq!(
            nearest(&top, &[root.path().to_path_buf()]),
            Found::Nothing(vec![top.clone()])
        );
    }
}
