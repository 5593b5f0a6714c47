//! Environment reading shared by the replication function binaries, with errors that name
//! the variable.

use std::time::Duration;

use dome_events::MemberId;

#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct EnvError {
    pub name: String,
    pub message: String,
}

fn error(name: &str, message: impl Into<String>) -> EnvError {
    EnvError {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// The trimmed value of `name`, `None` when unset or blank.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub fn required(name: &str) -> Result<String, EnvError> {
    optional(name).ok_or_else(|| error(name, "required"))
}

/// This marketplace's member id on the bus (`DOME_MEMBER_ID`).
pub fn member_id() -> Result<MemberId, EnvError> {
    const NAME: &str = "DOME_MEMBER_ID";
    MemberId::new(required(NAME)?).map_err(|e| error(NAME, e.to_string()))
}

/// A whole number between `min` and `max`, `default` when unset.
pub fn number(name: &str, default: u64, min: u64, max: u64) -> Result<u64, EnvError> {
    match optional(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                error(
                    name,
                    format!("{text:?} is not a number from {min} to {max}"),
                )
            }),
    }
}

/// `DOME_PUBLISH_BUNDLE`: most outbox rows per bus transaction.
pub fn publish_bundle() -> Result<usize, EnvError> {
    let most = number(
        "DOME_PUBLISH_BUNDLE",
        dome_replication::publisher::DEFAULT_BUNDLE as u64,
        1,
        dome_events::MAX_BUNDLE_EVENTS as u64,
    )?;
    Ok(most as usize)
}

/// Milliseconds as a duration (at least 1 ms), `default` when unset.
pub fn millis(name: &str, default: Duration) -> Result<Duration, EnvError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    number(name, default_ms, 1, u64::MAX).map(Duration::from_millis)
}

/// The comma-separated validator RPC URLs of `DOME_BUS_RPC`.
pub fn bus_rpc(name: &str) -> Result<Vec<String>, EnvError> {
    let urls: Vec<String> = required(name)?
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(error(name, "no URL"));
    }
    Ok(urls)
}

/// Whether the process runs under the Lambda runtime.
pub fn under_lambda() -> bool {
    optional("AWS_LAMBDA_RUNTIME_API").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded_and_errors_name_the_variable() {
        // Names unique to this test: the environment is shared by the test threads.
        std::env::set_var("DOME_TEST_ENV_NUMBER", " 7 ");
        assert_eq!(number("DOME_TEST_ENV_NUMBER", 1, 1, 10).ok(), Some(7));
        std::env::set_var("DOME_TEST_ENV_NUMBER", "70");
        let e = number("DOME_TEST_ENV_NUMBER", 1, 1, 10).err();
        assert!(e.is_some_and(|e| e.to_string().starts_with("DOME_TEST_ENV_NUMBER: ")));
        assert_eq!(number("DOME_TEST_ENV_UNSET", 3, 1, 10).ok(), Some(3));
        std::env::set_var("DOME_TEST_ENV_RPC", "http://a:1, ,http://b:2");
        assert_eq!(
            bus_rpc("DOME_TEST_ENV_RPC").ok(),
            Some(vec!["http://a:1".to_owned(), "http://b:2".to_owned()])
        );
        std::env::set_var("DOME_TEST_ENV_RPC", " , ");
        assert!(bus_rpc("DOME_TEST_ENV_RPC").is_err());
    }
}
