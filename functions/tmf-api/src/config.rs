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
/// Default page cache of the embedded store in MiB (`DOME_STORE_CACHE_MIB`): the store's own
/// default. redb's default (1 GiB) let the cache keep every page written, which was most of
/// the growth of the server under writes (docs/benchmarks.md).
pub const DEFAULT_STORE_CACHE_MIB: usize =
    dome_catalog_store::EmbeddedStore::DEFAULT_CACHE_BYTES / (1024 * 1024);
/// Default cap on tokio's blocking threads (`DOME_BLOCKING_THREADS`), which run the embedded
/// store's reads and commits: the number of cores, at least 2. That work is CPU-bound reads
/// and commits that redb runs one at a time, so more threads add memory (every thread keeps
/// allocator memory of its own), not throughput; tokio's own default (512) let a burst of
/// requests start dozens (docs/benchmarks.md).
pub fn default_blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Every variable [`Config::from_lookup`] reads (besides `AWS_LAMBDA_RUNTIME_API`, which the
/// Lambda runtime sets). `infra/functions.json`, from which the CDK app builds the function's
/// environment, must list exactly these (checked by a test), so the deployment and the binary
/// cannot drift apart.
pub const ENV_VARS: &[&str] = &[
    "DOME_ADDR_FILE",
    "DOME_API_TOKENS",
    "DOME_AUTH",
    "DOME_BLOCKING_THREADS",
    "DOME_BUS_RPC",
    "DOME_CALLBACK_ALLOW_PRIVATE",
    "DOME_DATA_DIR",
    "DOME_HEAD_CACHE",
    "DOME_JWKS_URL",
    "DOME_JWT_AUDIENCE",
    "DOME_JWT_ISSUER",
    "DOME_LISTEN",
    "DOME_LOG_FORMAT",
    "DOME_MAX_BODY_BYTES",
    "DOME_MAX_LIMIT",
    "DOME_MEMBER_ID",
    "DOME_NOTIFY_QUEUE_URL",
    "DOME_PUBLIC_BASE_URL",
    "DOME_STORE",
    "DOME_STORE_CACHE_MIB",
    "DOME_TABLE",
];

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
    /// JWTs of an identity provider (`DOME_AUTH=jwt`; see `jwt.rs`).
    Jwt {
        issuer: String,
        audience: String,
        jwks_url: String,
    },
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
    /// Page cache of the embedded store, in bytes (`DOME_STORE_CACHE_MIB`).
    pub store_cache_bytes: usize,
    /// Hub notifications go to this SQS queue (`DOME_NOTIFY_QUEUE_URL`), for the notifier
    /// function to deliver; unset: delivered by this process.
    pub notify_queue_url: Option<String>,
    /// Whether callbacks may be on loopback, private, link-local or other non-public
    /// addresses (`DOME_CALLBACK_ALLOW_PRIVATE`; default: false on Lambda, true locally).
    pub callback_allow_private: bool,
    /// CometBFT RPC URLs to read the member registry from (`DOME_BUS_RPC`, comma-separated,
    /// tried in turn). Empty: signed fetches are not checked, so restricted versions are
    /// served to bearer-token callers only.
    pub bus_rpc: Vec<String>,
    /// This marketplace's member id on the bus (`DOME_MEMBER_ID`), shown by the replication
    /// status.
    pub member_id: Option<dome_events::MemberId>,
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
            Some("jwt") => {
                let required = |name: &'static str| {
                    get(name)
                        .map(|v| v.trim().to_string())
                        .ok_or_else(|| err(name, "required with DOME_AUTH=jwt"))
                };
                let jwks_url = required("DOME_JWKS_URL")?;
                if !crate::jwt::acceptable_jwks_url(&jwks_url) {
                    return Err(err(
                        "DOME_JWKS_URL",
                        "must be https:// (http:// only to a loopback address)",
                    ));
                }
                AuthConfig::Jwt {
                    issuer: required("DOME_JWT_ISSUER")?,
                    audience: required("DOME_JWT_AUDIENCE")?,
                    jwks_url,
                }
            }
            Some("none") if lambda => {
                return Err(err("DOME_AUTH", "none is refused on Lambda"));
            }
            Some("none") => AuthConfig::Disabled,
            Some(other) => {
                return Err(err(
                    "DOME_AUTH",
                    format!("{other:?}: expected tokens, jwt or none"),
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
        let store_cache_mib = count("DOME_STORE_CACHE_MIB", DEFAULT_STORE_CACHE_MIB)?;
        let store_cache_bytes = store_cache_mib.checked_mul(1024 * 1024).ok_or_else(|| {
            err(
                "DOME_STORE_CACHE_MIB",
                format!("{store_cache_mib} MiB does not fit in memory"),
            )
        })?;
        let head_cache = match get("DOME_HEAD_CACHE") {
            None => DEFAULT_HEAD_CACHE,
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                err(
                    "DOME_HEAD_CACHE",
                    format!("{v:?} is not a number of entries (0 turns the cache off)"),
                )
            })?,
        };

        let notify_queue_url = get("DOME_NOTIFY_QUEUE_URL").map(|u| u.trim().to_string());
        if let Some(url) = &notify_queue_url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(err("DOME_NOTIFY_QUEUE_URL", "must be an SQS queue URL"));
            }
        }
        let callback_allow_private =
            match get("DOME_CALLBACK_ALLOW_PRIVATE").as_deref().map(str::trim) {
                None => !lambda,
                Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(err(
                        "DOME_CALLBACK_ALLOW_PRIVATE",
                        format!("{other:?}: expected true or false"),
                    ))
                }
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

        let bus_rpc = match get("DOME_BUS_RPC") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(check_rpc_url)
                .collect::<Result<Vec<_>, _>>()?,
        };
        let member_id = get("DOME_MEMBER_ID")
            .map(|id| {
                dome_events::MemberId::new(id.trim()).map_err(|e| err("DOME_MEMBER_ID", e.reason))
            })
            .transpose()?;

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
            store_cache_bytes,
            notify_queue_url,
            callback_allow_private,
            bus_rpc,
            member_id,
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

/// An absolute http(s) URL of a CometBFT RPC endpoint, without a trailing slash.
fn check_rpc_url(url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| err("DOME_BUS_RPC", format!("{url:?} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none_or(str::is_empty)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(err(
            "DOME_BUS_RPC",
            format!("{url:?} is not an RPC URL like http://host:26657"),
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
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
        assert_eq!(c.store_cache_bytes, DEFAULT_STORE_CACHE_MIB * 1024 * 1024);
        assert!(c.blocking_threads >= 2);
        assert!(c.bus_rpc.is_empty());
        assert_eq!(c.member_id, None);
        let federated = config(&[
            ("DOME_AUTH", "none"),
            (
                "DOME_BUS_RPC",
                " http://127.0.0.1:26657/ , https://rpc.example",
            ),
            ("DOME_MEMBER_ID", "member-a"),
        ])
        .unwrap();
        assert_eq!(
            federated.bus_rpc,
            ["http://127.0.0.1:26657", "https://rpc.example"]
        );
        assert_eq!(federated.member_id.unwrap().as_str(), "member-a");
        let tuned = config(&[
            ("DOME_AUTH", "none"),
            ("DOME_HEAD_CACHE", "0"),
            ("DOME_BLOCKING_THREADS", "3"),
            ("DOME_STORE_CACHE_MIB", "4"),
        ])
        .unwrap();
        assert_eq!((tuned.head_cache, tuned.blocking_threads), (0, 3));
        assert_eq!(tuned.store_cache_bytes, 4 * 1024 * 1024);
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
    fn jwt_and_notification_settings() {
        let c = config(&[
            ("AWS_LAMBDA_RUNTIME_API", "x"),
            ("DOME_AUTH", "jwt"),
            ("DOME_JWT_ISSUER", "https://idp.example"),
            ("DOME_JWT_AUDIENCE", "catalogue"),
            ("DOME_JWKS_URL", "https://idp.example/.well-known/jwks.json"),
            (
                "DOME_NOTIFY_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/notify",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthConfig::Jwt {
                issuer: "https://idp.example".into(),
                audience: "catalogue".into(),
                jwks_url: "https://idp.example/.well-known/jwks.json".into(),
            }
        );
        assert_eq!(
            c.notify_queue_url.as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/1/notify")
        );
        assert!(
            !c.callback_allow_private,
            "private callbacks refused on Lambda"
        );
        let local = config(&[("DOME_AUTH", "none")]).unwrap();
        assert!(local.callback_allow_private && local.notify_queue_url.is_none());
        let strict = config(&[
            ("DOME_AUTH", "none"),
            ("DOME_CALLBACK_ALLOW_PRIVATE", "false"),
        ]);
        assert!(!strict.unwrap().callback_allow_private);
        for (vars, var) in [
            (vec![("DOME_AUTH", "jwt")], "DOME_JWKS_URL"),
            (
                vec![
                    ("DOME_AUTH", "jwt"),
                    ("DOME_JWKS_URL", "http://idp.example/jwks"),
                ],
                "DOME_JWKS_URL",
            ),
            (
                vec![
                    ("DOME_AUTH", "jwt"),
                    ("DOME_JWKS_URL", "http://127.0.0.1:1/jwks"),
                ],
                "DOME_JWT_ISSUER",
            ),
            (
                vec![
                    ("DOME_AUTH", "none"),
                    ("DOME_CALLBACK_ALLOW_PRIVATE", "yes"),
                ],
                "DOME_CALLBACK_ALLOW_PRIVATE",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_NOTIFY_QUEUE_URL", "notify")],
                "DOME_NOTIFY_QUEUE_URL",
            ),
        ] {
            assert_eq!(config(&vars).unwrap_err().var, var, "{vars:?}");
        }
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
                vec![("DOME_AUTH", "none"), ("DOME_STORE_CACHE_MIB", "0")],
                "DOME_STORE_CACHE_MIB",
            ),
            (
                vec![
                    ("DOME_AUTH", "none"),
                    ("DOME_STORE_CACHE_MIB", "18446744073709551615"),
                ],
                "DOME_STORE_CACHE_MIB",
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
            (
                vec![
                    ("DOME_AUTH", "none"),
                    ("DOME_BUS_RPC", "tcp://127.0.0.1:26657"),
                ],
                "DOME_BUS_RPC",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_BUS_RPC", "127.0.0.1:26657")],
                "DOME_BUS_RPC",
            ),
            (
                vec![("DOME_AUTH", "none"), ("DOME_MEMBER_ID", "Member A")],
                "DOME_MEMBER_ID",
            ),
        ] {
            assert_eq!(config(&vars).unwrap_err().var, var, "{vars:?}");
        }
    }

    #[test]
    fn env_vars_lists_exactly_what_the_parser_reads() {
        use std::cell::RefCell;
        use std::collections::BTreeSet;
        // Every branch that reads more variables: Lambda or not, each store and auth mode.
        let setups: [&[(&str, &str)]; 4] = [
            &[("DOME_API_TOKENS", "t")],
            &[
                ("AWS_LAMBDA_RUNTIME_API", "x"),
                ("DOME_STORE", "dynamodb"),
                ("DOME_TABLE", "t"),
                ("DOME_AUTH", "jwt"),
                ("DOME_JWT_ISSUER", "https://issuer"),
                ("DOME_JWT_AUDIENCE", "a"),
                ("DOME_JWKS_URL", "https://issuer/jwks"),
            ],
            &[
                ("DOME_AUTH", "none"),
                ("DOME_BUS_RPC", "http://127.0.0.1:26657"),
                ("DOME_MEMBER_ID", "member-a"),
            ],
            &[
                ("DOME_AUTH", "tokens"),
                ("DOME_API_TOKENS", "t"),
                ("DOME_NOTIFY_QUEUE_URL", "http://127.0.0.1:5000/q"),
            ],
        ];
        let read = RefCell::new(BTreeSet::new());
        for setup in setups {
            let map: std::collections::HashMap<&str, &str> = setup.iter().copied().collect();
            let _ = Config::from_lookup(|name| {
                read.borrow_mut().insert(name.to_owned());
                map.get(name).map(|v| (*v).to_owned())
            });
        }
        let mut read = read.into_inner();
        read.remove("AWS_LAMBDA_RUNTIME_API");
        let listed: BTreeSet<String> = ENV_VARS.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            read, listed,
            "ENV_VARS and the variables Config reads differ"
        );
    }

    #[test]
    fn infra_functions_json_lists_the_same_variables() {
        if let Err(e) = dome_functions_manifest::check_env("tmf-api", ENV_VARS, &["RUST_LOG"]) {
            panic!("{e}");
        }
    }
}
