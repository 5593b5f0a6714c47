//! Pure assembly of the shared `genesis.json`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// A genesis validator as read from a node's `config/priv_validator_key.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Hex validator address (upper case, as CometBFT writes it).
    pub address: String,
    /// Base64 ed25519 public key.
    pub pub_key_base64: String,
    /// Voting power.
    pub power: u64,
    /// Informational name (the node's moniker).
    pub name: String,
}

const ED25519_PUB_KEY_TYPE: &str = "tendermint/PubKeyEd25519";

impl GenesisValidator {
    /// Reads the address and public key out of the JSON of a `priv_validator_key.json`.
    pub fn from_priv_validator_key(key: &Value, power: u64, name: &str) -> Result<Self> {
        let address = key
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("priv_validator_key.json has no string \"address\""))?;
        let pub_key = key
            .get("pub_key")
            .ok_or_else(|| anyhow!("priv_validator_key.json has no \"pub_key\""))?;
        let ty = pub_key.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != ED25519_PUB_KEY_TYPE {
            bail!("priv_validator_key.json: unsupported pub_key type {ty:?}, expected {ED25519_PUB_KEY_TYPE:?}");
        }
        let value = pub_key
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("priv_validator_key.json has no string \"pub_key.value\""))?;
        if address.is_empty() || value.is_empty() {
            bail!("priv_validator_key.json has an empty address or public key");
        }
        Ok(GenesisValidator {
            address: address.to_string(),
            pub_key_base64: value.to_string(),
            power,
            name: name.to_string(),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "pub_key": { "type": ED25519_PUB_KEY_TYPE, "value": self.pub_key_base64 },
            "power": self.power.to_string(),
            "name": self.name,
        })
    }
}

/// Builds the network genesis from a `genesis.json` written by `cometbft init` (used as the
/// template for `consensus_params` and any other field), replacing `genesis_time`,
/// `chain_id`, `initial_height` (`"1"`), `validators`, `app_hash` (empty) and `app_state`
/// (removed when `app_state` is `Null`).
pub fn build_genesis(
    template: &Value,
    chain_id: &str,
    genesis_time: &str,
    validators: &[GenesisValidator],
    app_state: &Value,
) -> Result<Value> {
    if validators.is_empty() {
        bail!("a genesis needs at least one validator");
    }
    if chain_id.is_empty() || chain_id.len() > 50 {
        bail!("chain_id must be 1 to 50 bytes long, got {chain_id:?}");
    }
    let mut genesis = template.clone();
    let obj = genesis
        .as_object_mut()
        .context("genesis template is not a JSON object")?;
    obj.insert("genesis_time".into(), Value::from(genesis_time));
    obj.insert("chain_id".into(), Value::from(chain_id));
    obj.insert("initial_height".into(), Value::from("1"));
    obj.insert(
        "validators".into(),
        Value::Array(validators.iter().map(GenesisValidator::to_json).collect()),
    );
    obj.insert("app_hash".into(), Value::from(""));
    if app_state.is_null() {
        obj.remove("app_state");
    } else {
        obj.insert("app_state".into(), app_state.clone());
    }
    Ok(genesis)
}

/// Formats a time as RFC 3339 UTC with nanoseconds, e.g. `2026-01-02T03:04:05.000000006Z`,
/// the format CometBFT uses for `genesis_time`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(addr: &str, pk: &str) -> Value {
        json!({
            "address": addr,
            "pub_key": {"type": "tendermint/PubKeyEd25519", "value": pk},
            "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "secret"}
        })
    }

    #[test]
    fn reads_priv_validator_key() {
        let v =
            GenesisValidator::from_priv_validator_key(&key("AB12", "cGs="), 10, "node0").unwrap();
        assert_eq!(v.address, "AB12");
        assert_eq!(v.pub_key_base64, "cGs=");
        let mut bad = key("AB12", "cGs=");
        bad["pub_key"]["type"] = json!("tendermint/PubKeySecp256k1");
        assert!(GenesisValidator::from_priv_validator_key(&bad, 10, "n").is_err());
        assert!(GenesisValidator::from_priv_validator_key(&json!({}), 10, "n").is_err());
    }

    #[test]
    fn assembles_genesis_from_template() {
        let template = json!({
            "genesis_time": "2020-01-01T00:00:00Z",
            "chain_id": "test-chain-X",
            "initial_height": "0",
            "consensus_params": {"block": {"max_bytes": "22020096", "max_gas": "-1"}},
            "validators": [{"address": "OLD"}],
            "app_hash": ""
        });
        let vals: Vec<_> = (0..4)
            .map(|i| {
                GenesisValidator::from_priv_validator_key(
                    &key(&format!("ADDR{i}"), &format!("PK{i}")),
                    10,
                    &format!("node{i}"),
                )
                .unwrap()
            })
            .collect();
        let app_state = json!({"members": [1, 2]});
        let g = build_genesis(
            &template,
            "dome",
            "2026-01-01T00:00:00.000000000Z",
            &vals,
            &app_state,
        )
        .unwrap();
        assert_eq!(g["chain_id"], "dome");
        assert_eq!(g["genesis_time"], "2026-01-01T00:00:00.000000000Z");
        assert_eq!(g["initial_height"], "1");
        assert_eq!(g["consensus_params"], template["consensus_params"]);
        assert_eq!(g["app_state"], app_state);
        let gv = g["validators"].as_array().unwrap();
        assert_eq!(gv.len(), 4);
        assert_eq!(gv[3]["address"], "ADDR3");
        assert_eq!(gv[3]["pub_key"]["type"], "tendermint/PubKeyEd25519");
        assert_eq!(gv[3]["pub_key"]["value"], "PK3");
        assert_eq!(gv[3]["power"], "10");
        assert_eq!(gv[3]["name"], "node3");

        let g = build_genesis(&template, "dome", "t", &vals, &Value::Null).unwrap();
        assert!(g.get("app_state").is_none());
        assert!(build_genesis(&template, "dome", "t", &[], &Value::Null).is_err());
        assert!(build_genesis(&template, "", "t", &vals, &Value::Null).is_err());
    }

    #[test]
    fn formats_rfc3339() {
        let at = |s: u64, n: u32| rfc3339_utc(UNIX_EPOCH + Duration::new(s, n));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            at(1_700_000_000, 123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000000000Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000000000Z");
    }
}
