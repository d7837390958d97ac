//! The data directory holds every tenant's events, so it is private to the server's user:
//! directories mode 0700 and files mode 0600, set when they are created (the mode given to
//! `open`/`mkdir`, which a umask can only narrow) and set again explicitly on directories, so
//! that no umask leaves a window in which another local user can read them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Mode of every directory the server creates under (and including) its data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the server creates in its data directory.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with [`DIR_MODE`], or tightens an existing one to it.
/// Tightening a directory that other users could enter is logged.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    tighten(dir, DIR_MODE)
}

/// Options for creating a file with [`FILE_MODE`]; add the access flags.
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Appended to a file's name while [`write_atomically`] writes it; a file so named is an
/// unfinished write, which its owner may delete when it opens the directory.
pub const TMP_SUFFIX: &str = ".tmp";

/// Replaces `dir/name` with the concatenation of `parts` so that a crash at any point leaves
/// either the old content or the new, never a mix: the parts are written to `name` +
/// [`TMP_SUFFIX`] (created with [`FILE_MODE`]), fsynced, renamed over `name`, and `dir` fsynced
/// so that the rename itself survives a crash. Parts rather than one slice let a caller put a
/// header before a large payload without copying it. A leftover temporary file (from a crash)
/// is removed first, because the mode given at creation applies only to a new file; on failure
/// the temporary file is removed again, best effort. Errors name the step and the file.
pub fn write_atomically(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    remove_if_present(&tmp).map_err(annotate("removing the leftover", &tmp))?;
    let written = write_and_sync(&tmp, parts).and_then(|()| {
        fs::rename(&tmp, &target).map_err(annotate("renaming over", &target))?;
        crate::log::sync_dir(dir).map_err(annotate("syncing the directory", dir))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates `tmp` with [`FILE_MODE`], writes `parts` to it and makes them durable.
fn write_and_sync(tmp: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut file = file_options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(annotate("creating", tmp))?;
    for part in parts {
        file.write_all(part).map_err(annotate("writing", tmp))?;
    }
    file.sync_all().map_err(annotate("syncing", tmp))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Adds what was being done to which file to an I/O error, keeping its kind.
fn annotate<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> io::Error + 'p {
    move |e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Prepares the data directory at start: creates it private, and tightens every directory and
/// file already under it (written by an older version, or copied in with wider modes) to
/// [`DIR_MODE`] and [`FILE_MODE`], logging each one it had to change. Symbolic links are left
/// alone: they are not the server's, and following them could change files elsewhere.
pub fn secure_data_dir(dir: &Path) -> io::Result<()> {
    create_dir(dir)?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                tighten(&entry.path(), DIR_MODE)?;
                stack.push(entry.path());
            } else if kind.is_file() {
                tighten(&entry.path(), FILE_MODE)?;
            }
        }
    }
    Ok(())
}

/// Sets `path` to `mode` when its permission bits differ, warning when others had access.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let was = fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if was == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    if was & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            was = format!("{was:o}"),
            now = format!("{mode:o}"),
            "data directory: tightened permissions so that other local users cannot read tenants' data"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_directories_and_files_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        let file = dir.join("f");
        file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(mode(&file), FILE_MODE);
    }

    #[test]
    fn atomic_writes_replace_the_file_privately_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let tmp = dir.path().join(format!("state{TMP_SUFFIX}"));
        // A leftover from a crash, readable by everyone: replaced, not reused.
        fs::write(&tmp, b"stale").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(dir.path(), "state", &[b"head", b"", b"er"]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"header");
        assert_eq!(mode(&path), FILE_MODE);
        assert!(!tmp.exists());
        write_atomically(dir.path(), "state", &[b"second"]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file_and_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("state"), b"old").unwrap();
        // Renaming a file over a non-empty directory fails after the temporary file was written.
        fs::create_dir(dir.path().join("busy")).unwrap();
        fs::write(dir.path().join("busy/x"), b"").unwrap();
        let err = write_atomically(dir.path(), "busy", &[b"new"]).unwrap_err();
        assert!(err.to_string().starts_with("renaming over "), "{err}");
        assert!(!dir.path().join(format!("busy{TMP_SUFFIX}")).exists());
        assert_eq!(fs::read(dir.path().join("state")).unwrap(), b"old");
    }

    #[test]
    fn an_existing_tree_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        fs::create_dir_all(data.join("wal")).unwrap();
        fs::write(data.join("wal/seg"), b"x").unwrap();
        fs::write(data.join("reg.json"), b"{}").unwrap();
        for (p, m) in [
            ("", 0o755),
            ("wal", 0o775),
            ("wal/seg", 0o644),
            ("reg.json", 0o666),
        ] {
            fs::set_permissions(data.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        secure_data_dir(&data).unwrap();
        assert_eq!(mode(&data), DIR_MODE);
        assert_eq!(mode(&data.join("wal")), DIR_MODE);
        assert_eq!(mode(&data.join("wal/seg")), FILE_MODE);
        assert_eq!(mode(&data.join("reg.json")), FILE_MODE);
    }
}
