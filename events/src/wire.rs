//! The wire format: how a [`Transaction`] becomes bytes on the bus and back.
//!
//! Bytes on the bus are the RFC 8785 canonical JSON of the envelope, so the same transaction
//! always has the same bytes and the same CometBFT transaction hash. Decoding is strict: a
//! size limit first, then the wire-format version, then the full shape with unknown fields
//! refused, then the stateless rules.

use serde::Deserialize;
use thiserror::Error;

use crate::canonical::{to_canonical_string, CanonicalError};
use crate::crypto::{CryptoError, MemberKeypair};
use crate::model::{
    Approval, CatalogueEvent, GovernanceProposal, InvalidField, Payload, Transaction,
};

/// The only wire-format version this build understands.
pub const WIRE_VERSION: u32 = 1;

/// Upper bound on a transaction's encoded size. Events carry metadata only, so a few KiB is
/// ample; governance proposals with many approvals stay well inside it too.
pub const MAX_TX_BYTES: usize = 32 * 1024;

/// Domain separation: signatures over dome transactions can never be confused with
/// signatures over anything else the same key might sign.
const SIGNING_DOMAIN: &[u8] = b"dome-bus-transaction\n";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("transaction is {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("transaction is not JSON: {0}")]
    NotJson(String),
    #[error("transaction has no wire-format version field \"v\"")]
    MissingVersion,
    #[error("unknown wire-format version {0}; this node understands version 1")]
    UnknownVersion(String),
    #[error("transaction does not match the version 1 format: {0}")]
    Malformed(String),
    #[error("invalid transaction: {0}")]
    Invalid(#[from] InvalidField),
}

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    #[error("encoded transaction is {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<serde_json::Value>,
}

/// Accepts only the wire-format version this build understands.
pub(crate) fn check_version(v: Option<serde_json::Value>) -> Result<(), DecodeError> {
    match v {
        None => Err(DecodeError::MissingVersion),
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(WIRE_VERSION as u64) => Ok(()),
        Some(other) => Err(DecodeError::UnknownVersion(other.to_string())),
    }
}

impl Transaction {
    /// Strictly decodes bytes taken from the bus or a client.
    pub fn decode(bytes: &[u8]) -> Result<Transaction, DecodeError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        check_version(probe.v)?;
        Self::decode_known_version(bytes)
    }

    /// [`Transaction::decode`] for bytes whose version field was already checked.
    pub(crate) fn decode_known_version(bytes: &[u8]) -> Result<Transaction, DecodeError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        let tx: Transaction =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        tx.validate()?;
        Ok(tx)
    }

    /// Canonical bytes of the whole envelope.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        let bytes = to_canonical_string(self)?.into_bytes();
        if bytes.len() > MAX_TX_BYTES {
            return Err(EncodeError::TooLarge {
                size: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        Ok(bytes)
    }

    /// The bytes every approval signs: a domain tag, then the canonical JSON of the
    /// wire-format version and the payload.
    pub fn signing_bytes(version: u32, payload: &Payload) -> Result<Vec<u8>, CanonicalError> {
        #[derive(serde::Serialize)]
        struct Signed<'a> {
            v: u32,
            payload: &'a Payload,
        }
        let body = to_canonical_string(&Signed {
            v: version,
            payload,
        })?;
        let mut bytes = Vec::with_capacity(SIGNING_DOMAIN.len() + body.len());
        bytes.extend_from_slice(SIGNING_DOMAIN);
        bytes.extend_from_slice(body.as_bytes());
        Ok(bytes)
    }

    /// A catalogue event signed by its origin.
    pub fn signed_event(
        event: CatalogueEvent,
        origin_key: &MemberKeypair,
    ) -> Result<Transaction, EncodeError> {
        let payload = Payload::CatalogueEvent(event);
        let message = Self::signing_bytes(WIRE_VERSION, &payload)?;
        let signer = match &payload {
            Payload::CatalogueEvent(e) => e.origin.clone(),
            Payload::Governance(_) => unreachable!("constructed as a catalogue event above"),
        };
        let tx = Transaction {
            v: WIRE_VERSION,
            payload,
            signatures: vec![Approval {
                signer,
                signature: origin_key.sign(&message),
            }],
        };
        tx.validate()?;
        Ok(tx)
    }

    /// A governance proposal with the approvals of the given members.
    pub fn approved_proposal(
        proposal: GovernanceProposal,
        approvers: &[(crate::model::MemberId, &MemberKeypair)],
    ) -> Result<Transaction, EncodeError> {
        let payload = Payload::Governance(proposal);
        let message = Self::signing_bytes(WIRE_VERSION, &payload)?;
        let signatures = approvers
            .iter()
            .map(|(id, key)| Approval {
                signer: id.clone(),
                signature: key.sign(&message),
            })
            .collect();
        let tx = Transaction {
            v: WIRE_VERSION,
            payload,
            signatures,
        };
        tx.validate()?;
        Ok(tx)
    }

    /// The bytes this transaction's approvals must sign.
    pub fn own_signing_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        Self::signing_bytes(self.v, &self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ContentHash;
    use crate::model::{Action, Audience, EntityRef, GovernanceAction, MemberId};
    use crate::test_keys;

    fn event(seq: u64) -> CatalogueEvent {
        CatalogueEvent {
            origin: test_keys::member_id(0),
            origin_seq: seq,
            entity: EntityRef {
                entity_type: "productOffering".into(),
                id: "po-1".into(),
                version: 1,
            },
            action: Action::Create,
            content_hash: Some(ContentHash::of_bytes(b"{}")),
            previous_hash: None,
            location: "http://127.0.0.1:8080/tmf-api/productCatalogManagement/v4/productOffering/po-1/version/1".into(),
            audience: Audience::All,
            issued_at: "2026-11-29T10:00:00.123Z".into(),
        }
    }

    fn signed(seq: u64) -> Transaction {
        Transaction::signed_event(event(seq), &test_keys::member_keypair(0)).expect("valid")
    }

    #[test]
    fn round_trips_and_signature_verifies() {
        let tx = signed(1);
        let bytes = tx.encode().expect("encodes");
        let back = Transaction::decode(&bytes).expect("decodes");
        assert_eq!(back, tx);
        let message = back.own_signing_bytes().expect("canonical");
        test_keys::member_keypair(0)
            .public_key()
            .verify(&message, &back.signatures[0].signature)
            .expect("origin signature verifies");
        // Canonical: encoding is stable.
        assert_eq!(back.encode().expect("encodes"), bytes);
    }

    #[test]
    fn signature_covers_every_field() {
        let tx = signed(1);
        let mut changed = tx.clone();
        if let Payload::CatalogueEvent(e) = &mut changed.payload {
            e.origin_seq = 2;
        }
        let message = changed.own_signing_bytes().expect("canonical");
        assert!(test_keys::member_keypair(0)
            .public_key()
            .verify(&message, &changed.signatures[0].signature)
            .is_err());
    }

    #[test]
    fn rejects_oversize_garbage_unknown_fields_and_versions() {
        let too_big = vec![b' '; MAX_TX_BYTES + 1];
        assert!(matches!(
            Transaction::decode(&too_big),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            Transaction::decode(b"\x00\xff garbage"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(
            Transaction::decode(br#"{"payload":{}}"#),
            Err(DecodeError::MissingVersion)
        );
        let mut value: serde_json::Value =
            serde_json::from_slice(&signed(1).encode().expect("encodes")).expect("json");
        value["v"] = serde_json::json!(2);
        assert_eq!(
            Transaction::decode(value.to_string().as_bytes()),
            Err(DecodeError::UnknownVersion("2".into()))
        );
        value["v"] = serde_json::json!(1);
        value["payload"]["catalogue_event"]["colour"] = serde_json::json!("blue");
        let err = Transaction::decode(value.to_string().as_bytes()).expect_err("unknown field");
        assert!(
            matches!(&err, DecodeError::Malformed(m) if m.contains("colour")),
            "{err}"
        );
    }

    #[test]
    fn stateless_rules_are_enforced() {
        let mut e = event(1);
        e.entity.version = 2;
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_err());
        let mut e = event(1);
        e.action = Action::Delete;
        e.entity.version = 3;
        e.previous_hash = Some(ContentHash::of_bytes(b"x"));
        assert!(Transaction::signed_event(e.clone(), &test_keys::member_keypair(0)).is_err());
        e.content_hash = None;
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_ok());
        let mut e = event(0);
        e.origin_seq = 0;
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_err());
        let mut e = event(1);
        e.issued_at = "2026-11-29 10:00:00+00:00".into();
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_err());
        let mut e = event(1);
        e.location = "ftp://x".into();
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_err());
        let mut e = event(1);
        e.audience = Audience::Members(vec![]);
        assert!(Transaction::signed_event(e, &test_keys::member_keypair(0)).is_err());
    }

    #[test]
    fn catalogue_event_must_be_signed_by_its_origin_only() {
        let mut tx = signed(1);
        tx.signatures[0].signer = test_keys::member_id(1);
        assert!(tx.validate().is_err());
        let tx = Transaction::decode(&signed(1).encode().expect("encodes")).expect("decodes");
        assert_eq!(tx.signatures.len(), 1);
    }

    #[test]
    fn governance_round_trip() {
        let keys: Vec<_> = (0..3).map(test_keys::member_keypair).collect();
        let approvers: Vec<(MemberId, &MemberKeypair)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (test_keys::member_id(i as u32), k))
            .collect();
        let proposal = GovernanceProposal {
            nonce: 1,
            action: GovernanceAction::RemoveMember {
                member: test_keys::member_id(3),
            },
            issued_at: "2026-11-29T10:00:00Z".into(),
        };
        let tx = Transaction::approved_proposal(proposal, &approvers).expect("valid");
        let back = Transaction::decode(&tx.encode().expect("encodes")).expect("decodes");
        assert_eq!(back, tx);
        let mut twice = tx.clone();
        twice.signatures.push(twice.signatures[0].clone());
        assert!(twice.validate().is_err());
    }
}
