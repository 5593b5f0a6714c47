//! Configuration from environment variables (see the README for the list).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Default listen address of the plain HTTP server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default and maximum page size of collection reads.
pub const DEFAULT_MAX_LIMIT: usize = 1000;
/// Default number of entity heads the embedded store's cache keeps (`DOME_HEAD_CACHE`).
pub const DEFAULT_HEAD_CACHE: usize = 4096;
/// Default cap on tokio's blocking threads (`DOME_BLOCKING_THREADS`), which run the embedded
/// store's reads and commits: the number of cores, at least 2. That work is CPU-bound reads
/// and commits that redb runs one at a time, so more threads add memory (every thread keeps
/// allocator memory of its own), not throughput; tokio's own default (512) let a burst of
/// requests start dozens (docs/benchmarks.md).
pub fn default_blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A redb file `catalog.redb` in this directory.
    Embedded { data_dir: PathBuf },
    /// The DynamoDB table named by `DOME_TABLE`.
    DynamoDb { table: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Static bearer tokens.
    Tokens(Vec<String>),
    /// No authentication at all: only for local conformance runs, refused on Lambda.
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Running under the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` is set).
    pub lambda: bool,
    pub listen: SocketAddr,
    /// Scheme, host and port that prefix every `href` and `Location`, e.g.
    /// `https://abc.lambda-url.eu-west-1.on.aws` (`DOME_PUBLIC_BASE_URL`). When unset: the
    /// function URL's domain name on Lambda, `http://<bound address>` for the plain server
    /// (see [`default_base_url`]).
    pub public_base_url: Option<String>,
    /// A file to write the bound `address:port` to once listening (`DOME_ADDR_FILE`), so
    /// that scripts and tests can use `DOME_LISTEN=127.0.0.1:0`.
    pub addr_file: Option<PathBuf>,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub max_body_bytes: usize,
    pub max_limit: usize,
    pub log_format: LogFormat,
    /// Heads kept in memory in front of the embedded store (`DOME_HEAD_CACHE`; 0: none).
    /// Not used with DynamoDB, which other processes write too.
    pub head_cache: usize,
    /// Most threads tokio's blocking pool may start (`DOME_BLOCKING_THREADS`).
    pub blocking_threads: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let lambda = get("AWS_LAMBDA_RUNTIME_API").is_some();

        let listen_text = get("DOME_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
            err(
                "DOME_LISTEN",
                format!("{listen_text:?} is not an address:port"),
            )
        })?;

        let public_base_url = match get("DOME_PUBLIC_BASE_URL") {
            Some(url) => Some(check_base_url(&url)?),
            None => None,
        };
        let addr_file = get("DOME_ADDR_FILE").map(PathBuf::from);

        let store = match get("DOME_STORE").as_deref().map(str::trim) {
            None | Some("embedded") => StoreConfig::Embedded {
                data_dir: PathBuf::from(get("DOME_DATA_DIR").unwrap_or_else(|| "data".into())),
            },
            Some("dynamodb") => StoreConfig::DynamoDb {
                table: get("DOME_TABLE")
                    .ok_or_else(|| err("DOME_TABLE", "required with DOME_STORE=dynamodb"))?,
            },
            Some(other) => {
                return Err(err(
                    "DOME_STORE",
                    format!("{other:?}: expected embedded or dynamodb"),
                ))
            }
        };

        let auth = match get("DOME_AUTH").as_deref().map(str::trim) {
            None | Some("tokens") => {
                let tokens: Vec<String> = get("DOME_API_TOKENS")
                    .unwrap_or_default()
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                if tokens.is_empty() {
                    return Err(err(
                        "DOME_API_TOKENS",
                        "set at least one bearer token (comma-separated), or DOME_AUTH=none \
                         for a local run without authentication",
                    ));
                }
                AuthConfig::Tokens(tokens)
            }
            Some("none") if lambda => {
                return Err(err("DOME_AUTH", "none is refused on Lambda"));
            }
            Some("none") => AuthConfig::Disabled,
            Some(other) => {
                return Err(err(
                    "DOME_AUTH",
                    format!("{other:?}: expected tokens or none"),
                ))
            }
        };

        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(name, format!("{v:?} is not a positive integer"))),
            }
        };
        let max_body_bytes = count("DOME_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        let max_limit = count("DOME_MAX_LIMIT", DEFAULT_MAX_LIMIT)?;
        let blocking_threads = count("DOME_BLOCKING_THREADS", default_blocking_threads())?;
        let head_cache = match get("DOME_HEAD_CACHE") {
            None => DEFAULT_HEAD_CACHE,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                err(
                    "DOME_HEAD_CACHE",
                    format!("{v:?} is not a number of entries (0 turns the cache off)"),
                )
            })?,
        };

        let log_format = match get("DOME_LOG_FORMAT").as_deref().map(str::trim) {
            None if lambda => LogFormat::Json,
            None => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(err(
                    "DOME_LOG_FORMAT",
                    format!("{other:?}: expected json or text"),
                ))
            }
        };

        Ok(Self {
            lambda,
            listen,
            public_base_url,
            addr_file,
            store,
            auth,
            max_body_bytes,
            max_limit,
            log_format,
            head_cache,
            blocking_threads,
        })
    }
}

/// The base URL of the plain server bound to `addr`: `http://addr`, with loopback in place
/// of an unspecified address.
pub fn default_base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    format!("http://{host}")
}

/// `http(s)://host[:port][/prefix]`, without a trailing slash, query or fragment.
fn check_base_url(url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            err(
                "DOME_PUBLIC_BASE_URL",
                "must start with http:// or https://",
            )
        })?;
    if rest.is_empty()
        || rest.starts_with('/')
        || rest.contains(['?', '#', ' '])
        || rest.chars().any(char::is_control)
    {
        return Err(err(
            "DOME_PUBLIC_BASE_URL",
            format!("{url:?} is not a base URL like https://host[:port]"),
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn local_defaults() {
        let c = config(&[("DOME_API_TOKENS", "t1, t2")]).unwrap();
        assert!(!c.lambda);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.public_base_url, None);
        assert_eq!(default_base_url(c.listen), "http://127.0.0.1:8080");
        assert_eq!(
            c.store,
            StoreConfig::Embedded {
                data_dir: "data".into()
            }
        );
        assert_eq!(c.auth, AuthConfig::Tokens(vec!["t1".into(), "t2".into()]));
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.max_limit, DEFAULT_MAX_LIMIT);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.head_cache, DEFAULT_HEAD_CACHE);
        assert_eq!(c.blocking_threads, default_blocking_threads());
        assert!(c.blocking_threads >= 2);
        let tuned = config(&[
            ("DOME_AUTH", "none"),
            ("DOME_HEAD_CACHE", "0"),
            ("DOME_BLOCKING_THREADS", "3"),
        ])
        .unwrap();
        assert_eq!((tuned.head_cache, tuned.blocking_threads), (0, 3));
        let any = config(&[
            ("DOME_AUTH", "none"),
            ("DOME_LISTEN", "0.0.0.0:9000"),
            ("DOME_ADDR_FILE", "/tmp/addr"),
        ])
        .unwrap();
        assert_eq!(default_base_url(any.listen), "http://127.0.0.1:9000");
        assert_eq!(any.addr_file, Some(PathBuf::from("/tmp/addr")));
        assert_eq!(any.auth, AuthConfig::Disabled);
    }

    #[test]
    fn lambda_settings() {
        let c = config(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("DOME_STORE", "dynamodb"),
            ("DOME_TABLE", "catalog"),
            ("DOME_API_TOKENS", "t"),
        ])
        .unwrap();
        assert!(c.lambda);
        assert_eq!(c.public_base_url, None);
        assert_eq!(
            c.store,
            StoreConfig::DynamoDb {
                table: "catalog".into()
            }
        );
        assert_eq!(c.log_format, LogFormat::Json);
        let e = config(&[("AWS_LAMBDA_RUNTIME_API", "x"), ("DOME_AUTH", "none")]).unwrap_err();
        assert_eq!(e.var, "DOME_AUTH");
        let c = config(&[
            ("AWS_LAMBDA_RUNTIME_API", "x"),
            ("DOME_API_TOKENS", "t"),
            ("DOME_PUBLIC_BASE_URL", "https://market.example/"),
        ])
        .unwrap();
        assert_eq!(c.public_base_url.as_deref(), Some("https://market.example"));
    }

    #[test]
    fn refuses_bad_values() {
        for (vars, var) in [
            (vec![], "DOME_API_TOKENS"),
            (vec![("DOME_API_TOKENS", " , ")], "DOME_API_TOKENS"),
            (vec![("DOME_AUTH", "maybe")], "DOME_AUTH"),
            (
                vec![("DOME_AUTH", "none"), ("DOME_LISTEN", "localhost")],
                "DOME_LISTEN",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_STORE", "s3")],
                "DOME_STORE",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_STORE", "dynamodb")],
                "DOME_TABLE",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_MAX_BODY_BYTES", "0")],
                "DOME_MAX_BODY_BYTES",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_MAX_LIMIT", "x")],
                "DOME_MAX_LIMIT",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_LOG_FORMAT", "xml")],
                "DOME_LOG_FORMAT",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_HEAD_CACHE", "-1")],
                "DOME_HEAD_CACHE",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_BLOCKING_THREADS", "0")],
                "DOME_BLOCKING_THREADS",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_PUBLIC_BASE_URL", "ftp://x")],
                "DOME_PUBLIC_BASE_URL",
            ),
            (
                vec![
                    ("DOME_AUTH", "none"),
                    ("DOME_PUBLIC_BASE_URL", "https://x/?a"),
                ],
                "DOME_PUBLIC_BASE_URL",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_PUBLIC_BASE_URL", "https://")],
                "DOME_PUBLIC_BASE_URL",
            ),
        ] {
            assert_eq!(config(&vars).unwrap_err().var, var, "{vars:?}");
        }
    }
}
