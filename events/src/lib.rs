//! The shared language of the dome bus.
//!
//! Everything a marketplace, a validator and a subscriber must agree on byte for byte lives
//! here: the catalogue event and governance transaction types, the versioned wire format,
//! canonical JSON (RFC 8785) for hashing and signing, sha256 content hashes and ed25519
//! member signatures. The crate performs no I/O so that every node computes the same result
//! from the same bytes.

pub mod bundle;
pub mod canonical;
pub mod codes;
pub mod crypto;
pub mod fetch_auth;
pub mod genesis;
pub mod model;
pub mod test_keys;
pub mod wire;

pub use bundle::{
    decode_bus_tx, encode_bundle, transaction_id, tx_id, CarriedTx, TxId, MAX_BUNDLE_BYTES,
    MAX_BUNDLE_EVENTS,
};
pub use codes::{QueryCode, TxCode, CODESPACE};
pub use crypto::{ContentHash, MemberKeypair, PreparedKey, PublicKey, Signature};
pub use model::{
    Action, Approval, Audience, CatalogueEvent, EntityRef, GovernanceAction, GovernanceProposal,
    MemberId, MemberInfo, Payload, Transaction,
};
pub use wire::{DecodeError, MAX_TX_BYTES, WIRE_VERSION};
