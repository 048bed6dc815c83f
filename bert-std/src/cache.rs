//! Folders of the model cache that appear only complete, made once however many threads and
//! processes ask for them at the same time.
//!
//! Every folder `NAME` under a cache root is made under an exclusive lock on `.NAME.lock` (an
//! OS file lock: released by the kernel when its holder exits or is killed, so a killed run
//! never blocks the next one). The holder looks again for `NAME` (another caller may have made
//! it while this one waited), removes what killed runs left behind, makes the folder in a
//! staging folder of its own and renames it into place. A reader therefore sees `NAME` whole or
//! not at all.
//!
//! - [`install`]: a download (`fetch`, `hub`): a fresh staging folder per call,
//!   `.NAME.staging.PID.N`; a failed or killed call's staging folder is removed (at once, or by
//!   the next caller that takes the lock).
//! - [`train_once`]: a model the project trains itself: one staging folder, `.NAME.partial`,
//!   kept when a run is killed so that the next run resumes from its last trainer state,
//!   together with the recipe it was made by (`.NAME.partial.recipe`): a partial folder from
//!   another recipe is started over, never mixed in.
//!
//! ```
//! # let root = tempfile::tempdir().unwrap();
//! let dir = bert_std::cache::install(root.path(), "notes", |staging| {
//!     std::fs::write(staging.join("a.txt"), "complete").map_err(|e| bert_std::Error::io(staging, e))
//! })?;
//! assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "complete");
//! // Made once: a second call finds it and runs nothing.
//! bert_std::cache::install(root.path(), "notes", |_| unreachable!())?;
//! # Ok::<(), bert_std::Error>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// An exclusive lock on one cache entry, held until dropped.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

/// Take the exclusive lock of entry `name` under `root` (creating `root`), waiting for whoever
/// holds it (and saying so on stderr when that takes a wait).
pub fn lock(root: &Path, name: &str) -> Result<EntryLock> {
    check_name(name)?;
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let path = root.join(format!(".{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for another run that is making {} (lock {})",
                root.join(name).display(),
                path.display()
            );
            file.lock().map_err(|e| Error::io(&path, e))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    Ok(EntryLock { _file: file })
}

/// The folder `root/name`, made by `make` into a staging folder of this call's own and renamed
/// into place when `make` succeeds; nothing is made when the folder is there already. Concurrent
/// callers (threads or processes) wait for one another: `make` runs once.
pub fn install(root: &Path, name: &str, make: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let dest = root.join(name);
    let Some(_lock) = claim(root, name)? else {
        return Ok(dest);
    };
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let staging = root.join(format!(
        ".{name}.staging.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
    let made = make(&staging).and_then(|()| publish(&staging, &dest));
    if made.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    made.map(|()| dest)
}

/// The folder `root/name` of a model the project trains itself, trained by `train` when it is
/// not there. `train` gets the staging folder `.NAME.partial` and must resume from the trainer
/// state it finds there (`TrainOptions::resume = true` does: without a state it starts from
/// zero), so that a run killed part-way is continued by the next one, with the same final
/// weights. `recipe` names how the model is made (its settings, data and base); a partial
/// folder left by another recipe is removed first. Concurrent callers wait for one another:
/// the model is trained once.
pub fn train_once(
    root: &Path,
    name: &str,
    recipe: &str,
    train: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dest = root.join(name);
    let Some(_lock) = claim(root, name)? else {
        return Ok(dest);
    };
    let partial = root.join(format!(".{name}.partial"));
    let recipe_file = root.join(format!(".{name}.partial.recipe"));
    let same_recipe = fs::read_to_string(&recipe_file).is_ok_and(|r| r == recipe);
    if partial.is_dir() && same_recipe {
        eprintln!(
            "resuming the interrupted training of {name} from {}",
            partial.display()
        );
    } else {
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        crate::atomic::write_atomic(&recipe_file, recipe.as_bytes())?;
        fs::create_dir(&partial).map_err(|e| Error::io(&partial, e))?;
    }
    train(&partial)?;
    publish(&partial, &dest)?;
    let _ = fs::remove_file(&recipe_file);
    Ok(dest)
}

/// The lock of entry `name`, with what killed runs left removed, when the entry is still to be
/// made; `None` when it is there (looked for before and after waiting for the lock).
fn claim(root: &Path, name: &str) -> Result<Option<EntryLock>> {
    check_name(name)?;
    if root.join(name).is_dir() {
        return Ok(None);
    }
    let lock = lock(root, name)?;
    if root.join(name).is_dir() {
        return Ok(None);
    }
    remove_stale(root, name);
    Ok(Some(lock))
}

/// Run one stage of a several-stage recipe into `dir`, unless an earlier run finished it
/// (marked by `dir/.stage-done`, written after `stage` returns): a resumed recipe skips the
/// stages it has and resumes the one that was cut.
pub fn stage(dir: &Path, stage: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let done = dir.join(".stage-done");
    if done.is_file() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    stage(dir)?;
    crate::atomic::write_atomic(&done, b"")
}

/// Move a finished staging folder into place, with its contents on disk first.
fn publish(staging: &Path, dest: &Path) -> Result<()> {
    sync_tree(staging)?;
    fs::rename(staging, dest).map_err(|e| Error::io(dest, e))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// fsync every file under `dir` (a rename must not publish files whose data is not on disk).
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Directories can be fsynced on Unix; elsewhere opening one fails, and there is nothing to do.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Remove what killed runs left for `name` (call with the lock held): staging folders of this
/// module (no live caller holds one: they all take the lock), and the folders of earlier
/// versions, `.NAME.PID` (downloads) and `.NAME-PID` (trained models), whose process is gone.
fn remove_stale(root: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let staging = format!(".{name}.staging.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let legacy_pid = file_name
            .strip_prefix(&format!(".{name}."))
            .or_else(|| file_name.strip_prefix(&format!(".{name}-")))
            .and_then(|pid| pid.parse::<u32>().ok());
        let stale = file_name.starts_with(&staging) || legacy_pid.is_some_and(|p| !alive(p));
        if stale {
            eprintln!(
                "removing {}, left by an interrupted run",
                entry.path().display()
            );
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` runs (Linux: `/proc/PID`; elsewhere assumed, so nothing is removed).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Entry names are single path components (a hub name is `ORG--NAME--REV`).
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "not a model cache entry name: {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_installs_make_the_folder_once() {
        let root = tempfile::tempdir().unwrap();
        let runs = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let dir = install(root.path(), "m", |staging| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        fs::write(staging.join("f"), "whole").unwrap();
                        Ok(())
                    })
                    .unwrap();
                    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "whole");
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let mut names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".m.lock", "m"]);
    }

    #[test]
    fn a_failed_install_leaves_nothing_and_the_next_one_runs() {
        let root = tempfile::tempdir().unwrap();
        let e = install(root.path(), "m", |staging| {
            fs::write(staging.join("half"), "x").unwrap();
            Err(Error::Fetch("network down".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("network down"));
        assert!(!root.path().join("m").exists());
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            1,
            "only the lock"
        );
        install(root.path(), "m", |_| Ok(())).unwrap();
        assert!(root.path().join("m").is_dir());
    }

    #[test]
    fn stale_staging_folders_are_removed_by_the_next_run() {
        let root = tempfile::tempdir().unwrap();
        for stale in [".m.staging.1.0", ".m.4294967295", ".m-4294967294"] {
            fs::create_dir_all(root.path().join(stale).join("download")).unwrap();
        }
        // Not the entry's: kept.
        fs::create_dir(root.path().join(".mm.staging.1.0")).unwrap();
        install(root.path(), "m", |_| Ok(())).unwrap();
        let mut names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".m.lock", ".mm.staging.1.0", "m"]);
    }

    #[test]
    fn train_once_resumes_a_partial_folder_of_the_same_recipe_only() {
        let root = tempfile::tempdir().unwrap();
        let partial = root.path().join(".t.partial");
        // A run killed part-way: its partial folder and recipe stay.
        let e = train_once(root.path(), "t", "recipe 1", |dir| {
            fs::write(dir.join("epoch1"), "state").unwrap();
            Err(Error::Input("killed".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("killed"));
        assert!(partial.join("epoch1").is_file());
        // The same recipe resumes from it.
        let dir = train_once(root.path(), "t", "recipe 1", |dir| {
            assert!(
                dir.join("epoch1").is_file(),
                "resumed from the partial folder"
            );
            Ok(())
        })
        .unwrap();
        assert!(dir.join("epoch1").is_file());
        assert!(!partial.exists() && !root.path().join(".t.partial.recipe").exists());

        // Another recipe starts over.
        let _ = train_once(root.path(), "u", "recipe 1", |dir| {
            fs::write(dir.join("old"), "x").unwrap();
            Err(Error::Input("killed".into()))
        });
        train_once(root.path(), "u", "recipe 2", |dir| {
            assert!(
                !dir.join("old").exists(),
                "another recipe's state is not mixed in"
            );
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn stages_done_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("stage1");
        let runs = AtomicUsize::new(0);
        let run = || {
            stage(&dir, |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        };
        run().unwrap();
        run().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn entry_names_are_one_plain_component() {
        for bad in ["", ".", "..", "a/b", ".hidden", "a\\b"] {
            assert!(lock(Path::new("/nonexistent"), bad).is_err(), "{bad}");
        }
    }
}
