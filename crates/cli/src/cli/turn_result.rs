//! `CAIRN_TURN_RESULT`: where `turn run`'s COMMAND may leave a small JSON result.
//!
//! The file is in a directory of its own, made for this one run with `mkdtemp(3)` under
//! `$TMPDIR` (a random name, mode 0700, created only if no such path exists), so that no
//! other user can create, replace or read it; the file itself is created with `O_EXCL`
//! (mode 0600) before COMMAND starts. It is read back without following a symbolic link
//! (`O_NOFOLLOW`; COMMAND, or whoever runs as cairn's user, could still plant one), only if
//! it is a regular file, and at most [`MAX_BYTES`] of it: a bigger result is refused, never
//! read whole. The directory and whatever is in it are removed when the run is done.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most of the file that is read. JSON as a person writes it (indented) may be larger
/// than its compact form, which a turn records up to [`cairn::turn::MAX_RESULT_BYTES`]
/// (replacing a bigger one with a note); a file beyond this is refused unread.
pub const MAX_BYTES: u64 = 64 * 1024;

/// A run's private result file; removed, with its directory, when dropped.
#[derive(Debug)]
pub struct ResultFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ResultFile {
    /// Makes a private directory under `$TMPDIR` named after turn `name`, and in it the
    /// empty result file.
    pub fn create(name: &cairn::Name) -> std::io::Result<Self> {
        let template = std::env::temp_dir().join(format!("cairn-turn-{name}-XXXXXX"));
        let mut bytes = template.into_os_string().into_vec();
        bytes.push(0);
        // SAFETY: `bytes` is a NUL-terminated template that mkdtemp rewrites in place.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot create a private directory for CAIRN_TURN_RESULT: {e}"),
            ));
        }
        bytes.pop();
        let dir = PathBuf::from(OsString::from_vec(bytes));
        let file = Self {
            path: dir.join("result.json"),
            dir,
        };
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&file.path)?;
        Ok(file)
    }

    /// The file's path, for COMMAND's `CAIRN_TURN_RESULT`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What COMMAND left: `None` when nothing (the file is empty or gone), the JSON value,
    /// or why it is refused (not a regular file, a symbolic link, larger than
    /// [`MAX_BYTES`], not JSON).
    pub fn read(&self) -> Result<Option<serde_json::Value>, String> {
        let opened = OpenOptions::new()
            .read(true)
            // Never block on a FIFO planted in its place.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err("it is a symbolic link, which is not followed".into())
            }
            Err(e) => return Err(format!("cannot open it: {e}")),
        };
        let kind = file
            .metadata()
            .map_err(|e| format!("cannot read it: {e}"))?
            .file_type();
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(format!("it is {what}"));
        }
        let bytes = read_bounded(file)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("not JSON ({e})"))
    }
}

/// At most [`MAX_BYTES`] of `file`; an error naming the limit if there is more.
fn read_bounded(file: File) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_BYTES) {
        return Err(format!(
            "it is larger than {MAX_BYTES} bytes (a turn's result is small JSON)"
        ));
    }
    Ok(bytes)
}

impl Drop for ResultFile {
    /// Removes the directory and everything in it (symbolic links are removed, never
    /// followed).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn result_file() -> ResultFile {
        ResultFile::create(&cairn::Name::new("unit").unwrap()).unwrap()
    }

    #[test]
    fn the_file_is_empty_in_a_fresh_private_directory_removed_on_drop() {
        let a = result_file();
        let b = result_file();
        assert_ne!(a.dir, b.dir, "every run has its own directory");
        let mode = std::fs::metadata(&a.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(a.read(), Ok(None));
        let dir = a.dir.clone();
        drop(a);
        assert!(!dir.exists());
    }

    #[test]
    fn json_is_read_and_anything_else_refused() {
        let f = result_file();
        std::fs::write(f.path(), "{\"expired\": 3}\n").unwrap();
        assert_eq!(f.read(), Ok(Some(serde_json::json!({"expired": 3}))));
        std::fs::write(f.path(), "not json").unwrap();
        assert!(f.read().unwrap_err().starts_with("not JSON"));
        let big = format!("\"{}\"", "x".repeat(usize::try_from(MAX_BYTES).unwrap()));
        std::fs::write(f.path(), big).unwrap();
        assert!(f.read().unwrap_err().contains("larger than 65536 bytes"));
        std::fs::remove_file(f.path()).unwrap();
        assert_eq!(f.read(), Ok(None));
        std::os::unix::fs::symlink("/etc/hostname", f.path()).unwrap();
        assert!(f.read().unwrap_err().contains("symbolic link"));
    }
}
