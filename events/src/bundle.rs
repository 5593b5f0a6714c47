//! Bundles: several signed catalogue events carried by one bus transaction.
//!
//! Every bus transaction costs each validator the same fixed work whatever it carries
//! (mempool admission and gossip, a CheckTx round trip over the ABCI socket, a re-check after
//! each commit, its slot in proposals and blocks). A publisher with a backlog therefore sends
//! its consecutive events together: `{"bundle":[tx, tx, ...],"v":1}`, where each element is
//! a complete, individually signed catalogue-event [`Transaction`].
//!
//! Each event keeps its own identity: its transaction id is the sha256 of the canonical bytes
//! of its own transaction, the same bytes (and so the same id) it has when sent alone. A
//! bundle is accepted or rejected as a whole; the app applies its events in order, so later
//! events may build on earlier ones (consecutive `origin_seq`s, successive versions).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_string;
use crate::model::{InvalidField, Payload, Transaction};
use crate::wire::{check_version, DecodeError, EncodeError, MAX_TX_BYTES, WIRE_VERSION};

/// Most events one bundle may carry.
pub const MAX_BUNDLE_EVENTS: usize = 64;

/// Upper bound on a bundle's encoded size (each event inside stays within [`MAX_TX_BYTES`]).
/// Far below CometBFT's default `mempool.max_tx_bytes` (1 MiB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// Identity of one transaction: sha256 of its bytes (CometBFT's transaction hash).
pub type TxId = [u8; 32];

/// sha256 of `bytes`, as CometBFT hashes transactions.
pub fn tx_id(bytes: &[u8]) -> TxId {
    Sha256::digest(bytes).into()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleWire<B> {
    v: u32,
    bundle: B,
}

#[derive(Deserialize)]
struct ShapeProbe {
    v: Option<serde_json::Value>,
    bundle: Option<serde::de::IgnoredAny>,
}

/// A signed transaction the bus carries, alone or inside a bundle, with its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedTx {
    /// sha256 of the bytes it was sent as alone; inside a bundle, of its canonical bytes
    /// (the same, since a transaction alone is sent canonical).
    pub id: TxId,
    pub tx: Transaction,
}

/// Strictly decodes the bytes of one bus transaction into the transactions it carries: one
/// alone, or a bundle's events in order. A size limit first (32 KiB alone, 256 KiB as a
/// bundle), then the wire-format version, then the shape with unknown fields refused, then
/// the stateless rules of every transaction.
pub fn decode_bus_tx(bytes: &[u8]) -> Result<Vec<CarriedTx>, DecodeError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    let probe: ShapeProbe = match serde_json::from_slice(bytes) {
        Ok(probe) => probe,
        // Oversize garbage is refused for its size, as a single transaction would be.
        Err(_) if bytes.len() > MAX_TX_BYTES => {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            })
        }
        Err(e) => return Err(DecodeError::NotJson(e.to_string())),
    };
    check_version(probe.v)?;
    if probe.bundle.is_none() {
        let tx = Transaction::decode_known_version(bytes)?;
        return Ok(vec![CarriedTx {
            id: tx_id(bytes),
            tx,
        }]);
    }
    let wire: BundleWire<Vec<Transaction>> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    check_count(wire.bundle.len())?;
    let mut items = Vec::with_capacity(wire.bundle.len());
    for (position, tx) in wire.bundle.into_iter().enumerate() {
        let canonical = checked_member(position, &tx).map_err(DecodeError::Invalid)?;
        items.push(CarriedTx {
            id: tx_id(&canonical),
            tx,
        });
    }
    Ok(items)
}

fn check_count(count: usize) -> Result<(), InvalidField> {
    if count == 0 {
        return Err(InvalidField {
            field: "bundle",
            reason: "a bundle carries at least one event".into(),
        });
    }
    if count > MAX_BUNDLE_EVENTS {
        return Err(InvalidField {
            field: "bundle",
            reason: format!("{count} events, the limit is {MAX_BUNDLE_EVENTS}"),
        });
    }
    Ok(())
}

/// Checks one element of a bundle and returns its canonical bytes.
fn checked_member(position: usize, tx: &Transaction) -> Result<Vec<u8>, InvalidField> {
    let at = |reason: String| InvalidField {
        field: "bundle",
        reason: format!("element {position}: {reason}"),
    };
    if tx.v != WIRE_VERSION {
        return Err(at(format!(
            "unknown wire-format version {}; this node understands version 1",
            tx.v
        )));
    }
    if !matches!(tx.payload, Payload::CatalogueEvent(_)) {
        return Err(at(
            "a bundle carries catalogue events only; governance travels alone".into(),
        ));
    }
    tx.validate().map_err(|e| at(e.to_string()))?;
    let canonical = to_canonical_string(tx)
        .map_err(|e| at(e.to_string()))?
        .into_bytes();
    if canonical.len() > MAX_TX_BYTES {
        return Err(at(format!(
            "{} bytes, the limit of one transaction is {MAX_TX_BYTES}",
            canonical.len()
        )));
    }
    Ok(canonical)
}

/// Canonical bytes of a bundle of signed catalogue events, in the order given.
pub fn encode_bundle(txs: &[Transaction]) -> Result<Vec<u8>, EncodeError> {
    check_count(txs.len())?;
    for (position, tx) in txs.iter().enumerate() {
        checked_member(position, tx)?;
    }
    let bytes = to_canonical_string(&BundleWire {
        v: WIRE_VERSION,
        bundle: txs,
    })?
    .into_bytes();
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(EncodeError::TooLarge {
            size: bytes.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    Ok(bytes)
}

/// The id a transaction has on the bus, alone or inside a bundle: sha256 of its canonical
/// bytes.
pub fn transaction_id(tx: &Transaction) -> Result<TxId, EncodeError> {
    Ok(tx_id(&tx.encode()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ContentHash;
    use crate::model::{Action, Audience, CatalogueEvent, EntityRef, GovernanceProposal};
    use crate::test_keys;

    fn signed(seq: u64) -> Transaction {
        let event = CatalogueEvent {
            origin: test_keys::member_id(0),
            origin_seq: seq,
            entity: EntityRef {
                entity_type: "productOffering".into(),
                id: format!("po-{seq}"),
                version: 1,
            },
            action: Action::Create,
            content_hash: Some(ContentHash::of_bytes(b"{}")),
            previous_hash: None,
            location: format!("http://127.0.0.1:8080/tmf-api/productCatalogManagement/v4/productOffering/po-{seq}/version/1"),
            audience: Audience::All,
            issued_at: "2026-11-30T10:00:00.123Z".into(),
        };
        Transaction::signed_event(event, &test_keys::member_keypair(0)).expect("valid")
    }

    #[test]
    fn a_bundle_round_trips_and_keeps_each_events_own_id() {
        let txs: Vec<Transaction> = (1..=3).map(signed).collect();
        let bytes = encode_bundle(&txs).expect("encodes");
        let items = decode_bus_tx(&bytes).expect("decodes");
        assert_eq!(items.len(), 3);
        for (item, tx) in items.iter().zip(&txs) {
            assert_eq!(&item.tx, tx);
            // The same id as the event sent alone.
            let alone = tx.encode().expect("encodes");
            assert_eq!(item.id, tx_id(&alone));
            assert_eq!(item.id, transaction_id(tx).expect("id"));
        }
        // Canonical: re-encoding gives the same bytes.
        assert_eq!(encode_bundle(&txs).expect("encodes"), bytes);
    }

    #[test]
    fn a_single_transaction_decodes_as_before() {
        let tx = signed(1);
        let bytes = tx.encode().expect("encodes");
        let items = decode_bus_tx(&bytes).expect("decodes");
        assert_eq!(
            items,
            vec![CarriedTx {
                id: tx_id(&bytes),
                tx: tx.clone()
            }]
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, tx_id(&bytes));
    }

    #[test]
    fn bad_bundles_are_refused_with_the_reason() {
        assert!(matches!(
            encode_bundle(&[]),
            Err(EncodeError::Invalid(InvalidField {
                field: "bundle",
                ..
            }))
        ));
        assert!(matches!(
            decode_bus_tx(br#"{"bundle":[],"v":1}"#),
            Err(DecodeError::Invalid(InvalidField {
                field: "bundle",
                ..
            }))
        ));
        let too_many: Vec<Transaction> = (1..=MAX_BUNDLE_EVENTS as u64 + 1).map(signed).collect();
        assert!(encode_bundle(&too_many).is_err());
        let wire = serde_json::to_vec(&BundleWire {
            v: 1,
            bundle: &too_many[..],
        })
        .expect("json");
        let err = decode_bus_tx(&wire).expect_err("too many events");
        assert!(err.to_string().contains("limit is 64"), "{err}");

        let governance = Transaction::approved_proposal(
            GovernanceProposal {
                nonce: 1,
                action: crate::model::GovernanceAction::RemoveMember {
                    member: test_keys::member_id(3),
                },
                issued_at: "2026-11-30T10:00:00.123Z".into(),
            },
            &[(test_keys::member_id(0), &test_keys::member_keypair(0))],
        )
        .expect("valid");
        let err = encode_bundle(&[signed(1), governance.clone()]).expect_err("governance");
        assert!(err.to_string().contains("element 1"), "{err}");
        let wire = serde_json::to_vec(&BundleWire {
            v: 1,
            bundle: vec![signed(1), governance],
        })
        .expect("json");
        let err = decode_bus_tx(&wire).expect_err("governance inside");
        assert!(err.to_string().contains("catalogue events only"), "{err}");

        // Unknown fields, unknown versions, garbage and oversize bytes.
        let mut value: serde_json::Value =
            serde_json::from_slice(&encode_bundle(&[signed(1)]).expect("encodes")).expect("json");
        value["colour"] = serde_json::json!("blue");
        assert!(matches!(
            decode_bus_tx(value.to_string().as_bytes()),
            Err(DecodeError::Malformed(m)) if m.contains("colour")
        ));
        value.as_object_mut().expect("object").remove("colour");
        value["v"] = serde_json::json!(2);
        assert_eq!(
            decode_bus_tx(value.to_string().as_bytes()),
            Err(DecodeError::UnknownVersion("2".into()))
        );
        value["v"] = serde_json::json!(1);
        value["bundle"][0]["v"] = serde_json::json!(2);
        assert!(decode_bus_tx(value.to_string().as_bytes())
            .expect_err("inner version")
            .to_string()
            .contains("element 0"));
        assert!(matches!(
            decode_bus_tx(b"\x00\xff garbage"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_bus_tx(&vec![b' '; MAX_BUNDLE_BYTES + 1]),
            Err(DecodeError::TooLarge {
                max: MAX_BUNDLE_BYTES,
                ..
            })
        ));
        // A single transaction keeps its own, smaller limit.
        assert!(matches!(
            decode_bus_tx(&vec![b' '; MAX_TX_BYTES + 1]),
            Err(DecodeError::TooLarge {
                max: MAX_TX_BYTES,
                ..
            })
        ));
        let mut big = signed(1);
        if let Payload::CatalogueEvent(e) = &mut big.payload {
            e.location = format!("http://127.0.0.1/{}", "x".repeat(MAX_TX_BYTES));
        }
        let wire = serde_json::to_vec(&big).expect("json");
        assert!(matches!(
            decode_bus_tx(&wire),
            Err(DecodeError::TooLarge {
                max: MAX_TX_BYTES,
                ..
            })
        ));
    }
}
