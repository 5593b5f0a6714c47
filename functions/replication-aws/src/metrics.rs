//! Metrics of the function binaries in CloudWatch embedded metric format (EMF): one JSON line
//! on stdout, which CloudWatch Logs turns into a metric. No API call and no IAM permission
//! beyond writing logs, and nothing is lost if the process dies right after.
//!
//! Names and dimensions must be those the CDK app alarms on; both sides read them from the
//! `metrics` section of infra/functions.json (checked by the test below).

use serde_json::{json, Value};

/// CloudWatch namespace of every dome metric.
pub const NAMESPACE: &str = "Dome";
/// How many bus heights the relay's checkpoint is behind the bus after a run.
pub const RELAY_LAG_METRIC: &str = "RelayLagHeights";
/// The one dimension of the relay lag metric: the member id of the marketplace.
pub const MEMBER_DIMENSION: &str = "Member";
/// EMF unit of the relay lag (a number of heights).
pub const RELAY_LAG_UNIT: &str = "Count";

/// The EMF log line that reports `lag_heights` for `member`, stamped `timestamp_ms`
/// (milliseconds since the Unix epoch). A single line: CloudWatch reads one log event as
/// one JSON document.
pub fn relay_lag_line(member: &str, lag_heights: u64, timestamp_ms: u64) -> String {
    let document: Value = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[MEMBER_DIMENSION]],
                "Metrics": [{"Name": RELAY_LAG_METRIC, "Unit": RELAY_LAG_UNIT}],
            }],
        },
        MEMBER_DIMENSION: member,
        RELAY_LAG_METRIC: lag_heights,
    });
    document.to_string()
}

/// How far the relay is behind: bus heights not yet handed over. A checkpoint ahead of the
/// bus (an endpoint that lags behind the one the relay followed) counts as no lag.
pub fn relay_lag(bus_height: u64, checkpoint: u64) -> u64 {
    bus_height.saturating_sub(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `metrics.relay_lag` entry of infra/functions.json, which the CDK's alarm reads.
    fn infra_relay_lag() -> Value {
        dome_functions_manifest::metric("relay_lag").expect("metrics.relay_lag")
    }

    #[test]
    fn the_line_is_emf_with_the_names_the_alarm_watches() {
        let line = relay_lag_line("member-b", 42, 1_700_000_000_123);
        assert!(!line.contains('\n'), "one log line");
        let parsed: Value = serde_json::from_str(&line).expect("the line is JSON");
        let directive = &parsed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(parsed["_aws"]["Timestamp"], 1_700_000_000_123u64);
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"].as_array().map(Vec::len),
            Some(1)
        );

        let infra = infra_relay_lag();
        assert_eq!(directive["Namespace"], infra["namespace"]);
        assert_eq!(directive["Metrics"][0]["Name"], infra["name"]);
        assert_eq!(directive["Metrics"][0]["Unit"], infra["unit"]);
        // EMF: a dimension set lists names whose values are members of the root object, and
        // the metric's value is the member named like the metric.
        assert_eq!(directive["Dimensions"], json!([infra["dimensions"]]));
        for dimension in infra["dimensions"].as_array().expect("dimensions") {
            let name = dimension.as_str().expect("dimension name");
            assert_eq!(parsed[name], "member-b", "value of dimension {name}");
        }
        let name = infra["name"].as_str().expect("metric name");
        assert_eq!(parsed[name], 42);
    }

    #[test]
    fn lag_counts_heights_not_yet_handed_over() {
        assert_eq!(relay_lag(120, 100), 20);
        assert_eq!(relay_lag(100, 100), 0);
        assert_eq!(relay_lag(99, 100), 0);
    }
}
