//! Connecting a node to the NATS servers: the URL list, credentials and TLS.
//!
//! Secrets never travel in argv (where `ps` and shell history show them): a credentials file or
//! a password file is named by path, or a user and password are taken from the environment.

use crate::ClusterError;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming a NATS `.creds` file (a user JWT and its NKey seed).
pub const ENV_CREDS_FILE: &str = "OCPM_NATS_CREDS";
/// Environment variables for user/password authentication; the password may instead be read
/// from the file named by [`ENV_PASSWORD_FILE`] (for secrets mounted as files).
pub const ENV_USER: &str = "OCPM_NATS_USER";
pub const ENV_PASSWORD: &str = "OCPM_NATS_PASSWORD";
pub const ENV_PASSWORD_FILE: &str = "OCPM_NATS_PASSWORD_FILE";
/// Environment variable naming a PEM file of root certificates; when set, TLS is required.
pub const ENV_TLS_CA_FILE: &str = "OCPM_NATS_CA";

/// How long one connection attempt to a server may take before the next URL is tried.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long a JetStream API request or a publish acknowledgement is awaited. Long enough to
/// ride out a stream leader election after a server dies (two to four seconds measured on
/// loopback with nats-server 2.9), short enough that an ingest request fails with 503 while the
/// producer's own timeout is still running.
pub const JETSTREAM_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// How a node authenticates to NATS.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    /// A `.creds` file (decentralised JWT auth).
    CredsFile(PathBuf),
    UserPassword {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for NatsAuth {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::CredsFile(p) => f.debug_tuple("CredsFile").field(p).finish(),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Everything needed to connect: the servers and how to authenticate to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// `nats://host:port` URLs (or bare `host:port`); the client connects to one and fails over
    /// to the others, and learns further cluster members from the servers themselves.
    pub servers: Vec<String>,
    pub auth: NatsAuth,
    /// Root certificates to verify the servers with; `Some` requires TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// The connection name shown by the servers' monitoring (`connz`), e.g. the node's address.
    pub name: String,
}

impl NatsOptions {
    /// Options for `servers` (a comma-separated list, as `--nats` takes it) with credentials and
    /// TLS taken from the environment (see the `ENV_*` constants).
    pub fn from_env(servers: &str, name: &str) -> Result<NatsOptions, ClusterError> {
        Self::from_lookup(servers, name, |k| std::env::var(k).ok())
    }

    /// [`NatsOptions::from_env`] with the environment given as a function, for tests.
    pub fn from_lookup(
        servers: &str,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NatsOptions, ClusterError> {
        let servers: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if servers.is_empty() {
            return Err(ClusterError::Config(
                "no NATS server given: pass at least one URL, e.g. nats://127.0.0.1:4222".into(),
            ));
        }
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        let auth = match (set(ENV_CREDS_FILE), set(ENV_USER)) {
            (Some(_), Some(_)) => {
                return Err(ClusterError::Config(format!(
                    "both {ENV_CREDS_FILE} and {ENV_USER} are set: choose one way to authenticate"
                )));
            }
            (Some(creds), None) => NatsAuth::CredsFile(creds.into()),
            (None, Some(user)) => NatsAuth::UserPassword {
                user,
                password: password(&set)?,
            },
            (None, None) => NatsAuth::None,
        };
        Ok(NatsOptions {
            servers,
            auth,
            tls_ca_file: set(ENV_TLS_CA_FILE).map(PathBuf::from),
            name: name.to_owned(),
        })
    }

    /// Connects to the servers. This returns at once even when none is reachable yet: the
    /// client keeps trying in the background (and reconnects by itself, forever, with backoff,
    /// whenever its server goes away), so a node can start and answer from its own state while
    /// NATS is down. JetStream calls fail with `Unavailable` until a connection is up.
    pub async fn connect(&self) -> Result<async_nats::Client, ClusterError> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(&self.name)
            .connection_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .request_timeout(Some(Duration::from_millis(JETSTREAM_REQUEST_TIMEOUT_MS)))
            .retry_on_initial_connect();
        opts = match &self.auth {
            NatsAuth::None => opts,
            NatsAuth::CredsFile(path) => opts.credentials_file(path).await.map_err(|e| {
                ClusterError::Config(format!(
                    "cannot read NATS credentials file {}: {e}",
                    path.display()
                ))
            })?,
            NatsAuth::UserPassword { user, password } => {
                opts.user_and_password(user.clone(), password.clone())
            }
        };
        if let Some(ca) = &self.tls_ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let addrs = self
            .servers
            .iter()
            .map(|s| {
                s.parse::<async_nats::ServerAddr>().map_err(|e| {
                    ClusterError::Config(format!(
                        "`{s}` is not a NATS URL ({e}); use nats://HOST:PORT"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        opts.connect(addrs)
            .await
            .map_err(|e| ClusterError::Unavailable(format!("cannot connect to NATS: {e}")))
    }
}

fn password(set: &impl Fn(&str) -> Option<String>) -> Result<String, ClusterError> {
    match (set(ENV_PASSWORD), set(ENV_PASSWORD_FILE)) {
        (Some(p), None) => Ok(p),
        (None, Some(file)) => std::fs::read_to_string(&file)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| {
                ClusterError::Config(format!("cannot read {ENV_PASSWORD_FILE} `{file}`: {e}"))
            }),
        (Some(_), Some(_)) => Err(ClusterError::Config(format!(
            "both {ENV_PASSWORD} and {ENV_PASSWORD_FILE} are set: choose one"
        ))),
        (None, None) => Err(ClusterError::Config(format!(
            "{ENV_USER} is set but neither {ENV_PASSWORD} nor {ENV_PASSWORD_FILE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(env: &[(&str, &str)]) -> Result<NatsOptions, ClusterError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NatsOptions::from_lookup("nats://a:4222, nats://b:4222,", "node-1", |k| {
            env.get(k).cloned()
        })
    }

    #[test]
    fn servers_split_and_auth_from_env() {
        let o = opts(&[]).unwrap();
        assert_eq!(o.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(o.auth, NatsAuth::None);
        assert_eq!(o.tls_ca_file, None);
        let o = opts(&[
            (ENV_CREDS_FILE, "/etc/ocpm/node.creds"),
            (ENV_TLS_CA_FILE, "/ca.pem"),
        ])
        .unwrap();
        assert_eq!(o.auth, NatsAuth::CredsFile("/etc/ocpm/node.creds".into()));
        assert_eq!(o.tls_ca_file, Some("/ca.pem".into()));
        let o = opts(&[(ENV_USER, "ocpm"), (ENV_PASSWORD, "s3cret")]).unwrap();
        assert_eq!(
            o.auth,
            NatsAuth::UserPassword {
                user: "ocpm".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn password_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let o = opts(&[
            (ENV_USER, "ocpm"),
            (ENV_PASSWORD_FILE, file.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(
            o.auth,
            NatsAuth::UserPassword {
                user: "ocpm".into(),
                password: "from-file".into()
            }
        );
    }

    #[test]
    fn ambiguous_or_incomplete_settings_are_refused() {
        let msg = |env: &[(&str, &str)]| opts(env).unwrap_err().to_string();
        assert_eq!(
            msg(&[(ENV_CREDS_FILE, "x"), (ENV_USER, "u")]),
            "configuration: both OCPM_NATS_CREDS and OCPM_NATS_USER are set: choose one way to authenticate"
        );
        assert_eq!(
            msg(&[(ENV_USER, "u")]),
            "configuration: OCPM_NATS_USER is set but neither OCPM_NATS_PASSWORD nor OCPM_NATS_PASSWORD_FILE"
        );
        assert!(
            NatsOptions::from_lookup(" , ", "n", |_| None)
                .unwrap_err()
                .to_string()
                .contains("no NATS server given")
        );
    }
}
