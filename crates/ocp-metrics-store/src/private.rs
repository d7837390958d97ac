//! The data directory holds every tenant's events, so it is private to the server's user:
//! directories mode 0700 and files mode 0600, set when they are created (the mode given to
//! `open`/`mkdir`, which a umask can only narrow) and set again explicitly on directories, so
//! that no umask leaves a window in which another local user can read them.

use std::fs::{self, OpenOptions};
use std::io;
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
