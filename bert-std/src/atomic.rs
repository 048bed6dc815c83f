//! Files the project writes are written atomically: into a temporary file in the same folder,
//! flushed and synced, then renamed over the target. A run that fails, is interrupted or is
//! killed leaves the target as it was (at worst a stray `.NAME.*.tmp` beside it, never a cut
//! file).
//!
//! ```
//! use std::io::Write;
//! use bert_std::atomic::AtomicFile;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("results.jsonl");
//! let mut out = AtomicFile::create(&path)?;
//! writeln!(out, "{{\"line\": 1}}").unwrap();
//! assert!(!path.exists()); // nothing replaced yet
//! out.commit()?;
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"line\": 1}\n");
//! # Ok::<(), bert_std::Error>(())
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written; it replaces `path` only on [`commit`](Self::commit). Dropped without
/// a commit, the temporary file is removed and `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    out: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Start writing `path` (its folder must exist). Nothing at `path` changes yet.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| Error::Input(format!("{} is not a file name", path.display())))?;
        let mut builder = tempfile::Builder::new();
        let prefix = format!(".{}.", name.to_string_lossy());
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode());
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let tmp = builder.tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(AtomicFile {
            path,
            out: BufWriter::with_capacity(1 << 16, tmp),
        })
    }

    /// The file it will become.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush, sync and rename over the target.
    pub fn commit(self) -> Result<()> {
        self.finish()?.persist()
    }

    /// Flush and sync, but do not rename yet: the whole content is on disk, beside the target.
    fn finish(self) -> Result<Written> {
        let path = self.path;
        let tmp = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(Written { path, tmp })
    }
}

/// A file written in full beside its target, waiting to be renamed over it.
#[derive(Debug)]
struct Written {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl Written {
    fn persist(self) -> Result<()> {
        self.tmp
            .persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(())
    }
}

/// Several files that replace their targets together, as one output (a model directory):
/// each is written in full, and synced, into a temporary file beside its target first; only
/// when every one is written are they renamed into place, in the order given. A run that fails
/// while writing (a full disk, a read-only folder) or is killed leaves every target as it was;
/// what remains after the writing is renames, which need no space.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let mut files = bert_std::atomic::AtomicFiles::default();
/// files.write(dir.path().join("config.json"), b"{}")?;
/// files.write(dir.path().join("model.safetensors"), b"...")?;
/// assert!(!dir.path().join("config.json").exists()); // nothing replaced yet
/// files.commit()?;
/// assert!(dir.path().join("model.safetensors").is_file());
/// # Ok::<(), bert_std::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct AtomicFiles {
    written: Vec<Written>,
}

impl AtomicFiles {
    /// Write `bytes` for `path` (its folder must exist); it replaces `path` on commit.
    pub fn write(&mut self, path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let path = path.as_ref();
        let mut f = AtomicFile::create(path)?;
        f.write_all(bytes).map_err(|e| Error::io(path, e))?;
        self.written.push(f.finish()?);
        Ok(())
    }

    /// Copy `src` for `dst`; it replaces `dst` on commit.
    pub fn copy(&mut self, src: &Path, dst: &Path) -> Result<()> {
        let mut f = AtomicFile::create(dst)?;
        let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
        std::io::copy(&mut input, &mut f).map_err(|e| Error::io(dst, e))?;
        self.written.push(f.finish()?);
        Ok(())
    }

    /// Rename every file over its target, in the order they were written.
    pub fn commit(self) -> Result<()> {
        for w in self.written {
            w.persist()?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path.as_ref())?;
    f.write_all(bytes)
        .map_err(|e| Error::io(path.as_ref(), e))?;
    f.commit()
}

/// Copy `src` to `dst` atomically.
pub fn copy_atomic(src: &Path, dst: &Path) -> Result<()> {
    let mut files = AtomicFiles::default();
    files.copy(src, dst)?;
    files.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_changes_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, b"old\n").unwrap();
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"half a li").unwrap();
            // dropped: a failed run
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file removed"
        );
        write_atomic(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_set_replaces_all_its_targets_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        std::fs::write(&b, b"old b").unwrap();
        {
            let mut files = AtomicFiles::default();
            files.write(&a, b"new a").unwrap();
            // The second file cannot be written (its folder is missing): nothing changes.
            let missing = dir.path().join("no-such-folder/b");
            assert!(files.write(&missing, b"new b").is_err());
        }
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temp files removed"
        );
        let mut files = AtomicFiles::default();
        files.write(&a, b"new a").unwrap();
        files.copy(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"old b");
        files.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(
            std::fs::read(&b).unwrap(),
            b"old a",
            "copied before the commit"
        );
    }
}
