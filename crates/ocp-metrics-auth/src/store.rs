//! The registry's files in the data directory: the [`FileStore`] of a single node.
//!
//! Both files are replaced atomically with the store crate's `private::write_atomically` (the
//! one implementation of tmp + fsync + rename + directory fsync in the workspace, next to the
//! data directory's 0700/0600 modes), so a crash leaves either the old or the new content.

use crate::credentials::{ClientRecord, CredentialStore, Credentials, RecordChange, TokenRecord};
use crate::error::AuthError;
use crate::jwt::SigningKey;
use ocp_metrics_service::BoxFuture;
use ocp_metrics_store::private;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The registry of clients and tokens, in the data directory. Holds hashes, never secrets.
pub const REGISTRY_FILE: &str = "auth-registry.json";
/// The 32-byte HS256 key, raw bytes, mode 0600.
pub const KEY_FILE: &str = "auth-jwt-hs256.key";
/// The registry file's format version; bump it on an incompatible change.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    clients: Vec<ClientRecord>,
    tokens: Vec<TokenRecord>,
}

/// Clients, tokens and the signing key in two files of a data directory; what a node that
/// shares its credentials with no other node uses.
///
/// A change is durable once the whole registry file has been rewritten and fsynced (with its
/// directory); the fsync runs on tokio's blocking pool so that it never holds up the threads
/// serving requests. Only one registry may use a directory at a time: the data directory's lock
/// (taken by the store) sees to that.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store in `data_dir`, created (mode 0700) when missing.
    pub fn open(data_dir: &Path) -> Result<FileStore, AuthError> {
        private::create_dir(data_dir)
            .map_err(|e| AuthError::storage(format!("creating {}", data_dir.display()), e))?;
        Ok(FileStore {
            dir: data_dir.to_owned(),
        })
    }

    /// The signing key, read or created, without an async runtime (for [`crate::Registry::open`]).
    pub(crate) fn signing_key_now(&self) -> Result<SigningKey, AuthError> {
        load_or_create_key(&self.dir)
    }

    /// The registry file's content, read without an async runtime.
    pub(crate) fn load_now(&self) -> Result<Credentials, AuthError> {
        load_state(&self.dir)
    }
}

impl CredentialStore for FileStore {
    fn signing_key(&self) -> BoxFuture<'_, Result<SigningKey, AuthError>> {
        // Two small files read once at start-up: not worth a blocking-pool hop.
        Box::pin(async move { self.signing_key_now() })
    }

    fn load(&self) -> BoxFuture<'_, Result<Credentials, AuthError>> {
        Box::pin(async move { self.load_now() })
    }

    fn persist<'a>(
        &'a self,
        _change: &'a RecordChange,
        after: &'a Credentials,
    ) -> BoxFuture<'a, Result<Option<u64>, AuthError>> {
        // Serialized here, so that the blocking task owns what it writes.
        let bytes = encode_state(after);
        let dir = self.dir.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write_atomic(&dir, REGISTRY_FILE, &bytes))
                .await
                .map_err(|e| {
                    AuthError::storage(format!("saving {REGISTRY_FILE}"), std::io::Error::other(e))
                })??;
            Ok(None)
        })
    }
}

fn load_state(dir: &Path) -> Result<Credentials, AuthError> {
    let path = dir.join(REGISTRY_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Credentials::default()),
        Err(e) => return Err(AuthError::storage(format!("reading {}", path.display()), e)),
    };
    let corrupt = |message: String| AuthError::Corrupt {
        path: path.clone(),
        message,
    };
    let file: RegistryFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not the supported {FORMAT_VERSION}",
            file.version
        )));
    }
    let mut state = Credentials::default();
    for c in file.clients {
        let id = c.info.id.clone();
        if state.clients.insert(id.clone(), c).is_some() {
            return Err(corrupt(format!("client {id} appears twice")));
        }
    }
    for t in file.tokens {
        let id = t.info.id.clone();
        if state.tokens.insert(id.clone(), t).is_some() {
            return Err(corrupt(format!("token {id} appears twice")));
        }
    }
    Ok(state)
}

fn encode_state(state: &Credentials) -> Vec<u8> {
    let file = RegistryFile {
        version: FORMAT_VERSION,
        clients: state.clients.values().cloned().collect(),
        tokens: state.tokens.values().cloned().collect(),
    };
    // Records of validated strings, hashes and timestamps always serialize.
    serde_json::to_vec_pretty(&file).expect("registry serializes")
}

/// Reads the signing key, or makes one on first start. A key that goes missing is replaced by a
/// new one, which invalidates every access token already issued: clients then ask for new ones.
fn load_or_create_key(dir: &Path) -> Result<SigningKey, AuthError> {
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path);
            SigningKey::from_bytes(&bytes).map_err(|message| AuthError::Corrupt {
                path: path.clone(),
                message,
            })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let key = SigningKey::generate();
            write_atomic(dir, KEY_FILE, &key.to_bytes())?;
            tracing::info!(path = %path.display(), "generated a new access-token signing key");
            Ok(key)
        }
        Err(e) => Err(AuthError::storage(format!("reading {}", path.display()), e)),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the access-token signing key is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Replaces `dir/name` with `bytes` atomically, the new file readable by its owner only.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), AuthError> {
    private::write_atomically(dir, name, &[bytes])
        .map_err(|e| AuthError::storage(format!("saving {name}"), e))
}
