//! `infra/functions.json`: the one description of what the CDK app deploys for each function
//! (its environment variables) and of the metrics the stack alarms on. The CDK app builds the
//! functions' configuration from it; each function binary checks, in a test, that the
//! variables it reads are exactly the ones deployed, so the two cannot drift apart.

use std::collections::BTreeSet;

use serde_json::Value;

/// The file, as compiled into the tests that use it.
pub const FUNCTIONS_JSON: &str = include_str!("../../../infra/functions.json");

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("infra/functions.json is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("infra/functions.json has no `functions.{0}.env` object")]
    NoFunction(String),
    #[error("infra/functions.json has no `metrics.{0}` entry")]
    NoMetric(String),
    #[error(
        "{function}: the binary and infra/functions.json differ: read but not deployed {read_only:?}, \
         deployed but not read {deployed_only:?}"
    )]
    EnvDiffers {
        function: String,
        read_only: Vec<String>,
        deployed_only: Vec<String>,
    },
}

/// The whole file.
pub fn manifest() -> Result<Value, ManifestError> {
    Ok(serde_json::from_str(FUNCTIONS_JSON)?)
}

/// The variables the stack sets for `function` (a key of `functions`).
pub fn deployed_env(function: &str) -> Result<BTreeSet<String>, ManifestError> {
    let manifest = manifest()?;
    let env = manifest["functions"][function]["env"]
        .as_object()
        .ok_or_else(|| ManifestError::NoFunction(function.to_owned()))?;
    Ok(env.keys().cloned().collect())
}

/// The `metrics.<name>` entry (namespace, name, unit, dimensions) the stack's alarm reads.
pub fn metric(name: &str) -> Result<Value, ManifestError> {
    let manifest = manifest()?;
    match &manifest["metrics"][name] {
        Value::Object(_) => Ok(manifest["metrics"][name].clone()),
        _ => Err(ManifestError::NoMetric(name.to_owned())),
    }
}

/// Checks that `reads`, what `function` reads on Lambda, are the variables the stack deploys
/// for it, apart from `deployed_not_read`: deployed variables the binary's own list leaves
/// out on purpose (`RUST_LOG`, read by the log filter; a variable only other code paths use).
pub fn check_env(
    function: &str,
    reads: &[&str],
    deployed_not_read: &[&str],
) -> Result<(), ManifestError> {
    let deployed = deployed_env(function)?;
    let reads: BTreeSet<String> = reads.iter().map(|n| (*n).to_owned()).collect();
    let read_only: Vec<String> = reads.difference(&deployed).cloned().collect();
    let deployed_only: Vec<String> = deployed
        .difference(&reads)
        .filter(|n| !deployed_not_read.contains(&n.as_str()))
        .cloned()
        .collect();
    if read_only.is_empty() && deployed_only.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::EnvDiffers {
            function: function.to_owned(),
            read_only,
            deployed_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_an_env_and_unknown_ones_are_errors() {
        for function in ["tmf-api", "notifier", "publisher", "relay", "replicator"] {
            assert!(deployed_env(function).is_ok(), "{function}");
        }
        assert!(matches!(
            deployed_env("no-such-function"),
            Err(ManifestError::NoFunction(_))
        ));
        assert!(matches!(
            metric("no-such-metric"),
            Err(ManifestError::NoMetric(_))
        ));
    }

    #[test]
    fn a_difference_names_both_sides() {
        let deployed = deployed_env("relay").expect("relay");
        let mut reads: Vec<&str> = deployed.iter().map(String::as_str).collect();
        assert!(check_env("relay", &reads, &[]).is_ok());
        let dropped = reads.pop().expect("relay has variables").to_owned();
        reads.push("DOME_NOT_DEPLOYED");
        match check_env("relay", &reads, &[]) {
            Err(ManifestError::EnvDiffers {
                read_only,
                deployed_only,
                ..
            }) => {
                assert_eq!(read_only, vec!["DOME_NOT_DEPLOYED".to_owned()]);
                assert_eq!(deployed_only, vec![dropped.clone()]);
            }
            other => panic!("{other:?}"),
        }
        // A deployed variable left out on purpose is not a difference.
        let without: Vec<&str> = reads
            .iter()
            .copied()
            .filter(|n| *n != "DOME_NOT_DEPLOYED")
            .collect();
        assert!(check_env("relay", &without, &[dropped.as_str()]).is_ok());
    }
}
