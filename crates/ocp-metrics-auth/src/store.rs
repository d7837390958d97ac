//! The registry's files in the data directory.
//!
//! Both files are replaced atomically with the store crate's `private::write_atomically` (the
//! one implementation of tmp + fsync + rename + directory fsync in the workspace, next to the
//! data directory's 0700/0600 modes), so a crash leaves either the old or the new content.

use crate::error::AuthError;
use crate::jwt::{KEY_BYTES, SigningKey};
use crate::registry::{ClientInfo, TokenInfo};
use crate::secret::{SecretHash, random_bytes};
use ocp_metrics_store::private;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// The registry of clients and tokens, in the data directory. Holds hashes, never secrets.
pub const REGISTRY_FILE: &str = "auth-registry.json";
/// The 32-byte HS256 key, raw bytes, mode 0600.
pub const KEY_FILE: &str = "auth-jwt-hs256.key";
/// The registry file's format version; bump it on an incompatible change.
const FORMAT_VERSION: u32 = 1;

/// A client as stored: what the admin API shows of it, and the hash of its secret. Flattened,
/// so the file holds one object per client with the hash as its last field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    #[serde(flatten)]
    pub info: ClientInfo,
    pub secret_sha256: SecretHash,
}

/// A personal access token as stored: what the admin API shows of it, and the hash of its
/// secret part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token_sha256: SecretHash,
}

/// Everything the registry knows, keyed by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub clients: BTreeMap<String, ClientRecord>,
    pub tokens: BTreeMap<String, TokenRecord>,
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    clients: Vec<ClientRecord>,
    tokens: Vec<TokenRecord>,
}

pub(crate) fn load_state(dir: &Path) -> Result<State, AuthError> {
    let path = dir.join(REGISTRY_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(State::default()),
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
    let mut state = State::default();
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

pub(crate) fn save_state(dir: &Path, state: &State) -> Result<(), AuthError> {
    let file = RegistryFile {
        version: FORMAT_VERSION,
        clients: state.clients.values().cloned().collect(),
        tokens: state.tokens.values().cloned().collect(),
    };
    // Records of validated strings, hashes and timestamps always serialize.
    let bytes = serde_json::to_vec_pretty(&file).expect("registry serializes");
    write_atomic(dir, REGISTRY_FILE, &bytes)
}

/// Reads the signing key, or makes one on first start. A key that goes missing is replaced by a
/// new one, which invalidates every access token already issued: clients then ask for new ones.
pub(crate) fn load_or_create_key(dir: &Path) -> Result<SigningKey, AuthError> {
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path);
            let key: [u8; KEY_BYTES] =
                bytes.try_into().map_err(|b: Vec<u8>| AuthError::Corrupt {
                    path: path.clone(),
                    message: format!("holds {} bytes, expected {KEY_BYTES}", b.len()),
                })?;
            Ok(SigningKey(key))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let key = random_bytes::<KEY_BYTES>();
            write_atomic(dir, KEY_FILE, &key)?;
            tracing::info!(path = %path.display(), "generated a new access-token signing key");
            Ok(SigningKey(key))
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
