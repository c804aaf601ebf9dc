//! The secret key file: read it, or make it on the first start of a database.

use anyhow::Context;
use netapi_core::sealing::SecretKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the key comes from.
#[derive(Debug)]
pub enum KeySource {
    /// A file that already existed.
    Existing(PathBuf),
    /// A file made just now; removed again if the database turns out to have another key.
    Created(PathBuf),
    /// An in-memory database: a key for this process only.
    Ephemeral,
}

/// Reads the key at `path`, or creates it (mode 0600) when there is none. Several processes
/// starting at once agree on one file: it is written aside and linked into place, which
/// fails for all but the first.
pub fn load_or_create(path: Option<&Path>) -> anyhow::Result<(SecretKey, KeySource)> {
    let Some(path) = path else {
        return Ok((SecretKey::generate(), KeySource::Ephemeral));
    };
    match read(path)? {
        Some(key) => Ok((key, KeySource::Existing(path.to_owned()))),
        None => {
            let key = SecretKey::generate();
            if create(path, &key)? {
                tracing::info!(path = %path.display(), "created the secret key file; back it up with the database");
                Ok((key, KeySource::Created(path.to_owned())))
            } else {
                let key = read(path)?
                    .with_context(|| format!("the secret key file {} vanished", path.display()))?;
                Ok((key, KeySource::Existing(path.to_owned())))
            }
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot read the secret key file {}", path.display()));
        }
    };
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret key file is readable by other users; chmod 600 it");
        }
    }
    SecretKey::parse(&text)
        .map(Some)
        .with_context(|| format!("the secret key file {} is not valid", path.display()))
}

/// True if this call made the file, false if another process made it first.
fn create(path: &Path, key: &SecretKey) -> anyhow::Result<bool> {
    let file_name = path
        .file_name()
        .with_context(|| format!("secret_key_file {} names no file", path.display()))?;
    let mut aside = file_name.to_owned();
    aside.push(format!(".{}.new", std::process::id()));
    let aside = path.with_file_name(aside);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&aside).and_then(|mut file| {
        file.write_all(key.to_file_text().as_bytes())?;
        file.sync_all()
    });
    if let Err(err) = written {
        let _ = std::fs::remove_file(&aside);
        return Err(err).with_context(|| {
            format!(
                "cannot create the secret key file beside {}",
                path.display()
            )
        });
    }
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err)
            .with_context(|| format!("cannot create the secret key file {}", path.display())),
    }
}

/// The error for a key that does not open this database. A file made just now is removed
/// first, so that the next start says the same instead of trusting a key nobody chose.
pub fn mismatch(source: &KeySource, reason: &str) -> anyhow::Error {
    match source {
        KeySource::Created(path) => {
            let _ = std::fs::remove_file(path);
            anyhow::anyhow!(
                "the secret key file {} was missing, and this database was set up with a key: \
                 restore the file (from a backup, or from another instance) and start again",
                path.display()
            )
        }
        KeySource::Existing(path) => anyhow::anyhow!("{reason} (read from {})", path.display()),
        KeySource::Ephemeral => anyhow::anyhow!("{reason}"),
    }
}
