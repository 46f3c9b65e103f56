//! Files only their owner may read: the data directory, the SQLite database (with its
//! `-wal` and `-shm`) and the dev-auth secret hold every message and the key that signs
//! tokens. Modes are set explicitly after creation, so the result does not depend on
//! the process umask.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) as `0700`. A directory that already exists is
/// left as it is (it may be shared, like `/tmp`), with a warning when others can enter it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), "the data directory is accessible to other users; chmod 700 it");
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not a directory", dir.display()))),
        Err(_) => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        }
    }
}

/// Makes the SQLite database at `path` private before SQLite opens it: creates its
/// directory (`0700`) and an empty file (`0600`) when missing, and brings an existing
/// database and its `-wal` / `-shm` to `0600`. SQLite gives the `-wal` and `-shm` files it
/// creates later the database file's mode.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for file in [path.to_path_buf(), with_suffix(path, "-wal"), with_suffix(path, "-shm")] {
        // Not followed: in a shared directory a link could point our chmod (and SQLite's
        // writes) at someone else's file.
        match fs::symlink_metadata(&file) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let text = format!("{} is a symbolic link; refusing to use it", file.display());
                return Err(io::Error::new(io::ErrorKind::InvalidInput, text));
            }
            Ok(meta) if meta.permissions().mode() & 0o777 != 0o600 => {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_and_its_directory_are_private() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("data").join("missive.db");
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(db.parent().unwrap()), 0o700);
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn existing_loose_files_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("missive.db");
        for f in [db.clone(), with_suffix(&db, "-wal"), with_suffix(&db, "-shm")] {
            fs::write(&f, b"").unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        }
        prepare_sqlite_file(&db).unwrap();
        for f in [db.clone(), with_suffix(&db, "-wal"), with_suffix(&db, "-shm")] {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
}
