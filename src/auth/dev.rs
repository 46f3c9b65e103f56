//! Dev auth: a random HS256 secret kept in the data directory, readable by its owner only,
//! so `missive token alice` and the running server agree without any setup. Only a
//! process that can read that file can mint tokens: nothing is served over the network.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const SECRET_FILE: &str = "dev-jwt-secret";

pub fn load_or_create(path: &Path) -> io::Result<String> {
    if let Some(dir) = path.parent() {
        crate::private_fs::create_private_dir(dir)?;
    }
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let secret = random_hex(32)?;
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(secret)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Tighten a copy that was loosened by hand: the secret is a master key.
            let mode = fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            }
            let secret = fs::read_to_string(path)?.trim().to_owned();
            if secret.len() < 32 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "secret shorter than 32 bytes; delete the file",
                ));
            }
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(SECRET_FILE);
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(fs::metadata(dir.path().join("sub")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
    }
}
