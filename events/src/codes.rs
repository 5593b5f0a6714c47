//! Result codes of the ABCI app, shared with clients so that both sides name a rejection
//! the same way. 0 is success; each rejection reason has its own code, stable across
//! releases (new reasons get new numbers).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum TxCode {
    Ok = 0,
    /// Not JSON, or not the shape of the wire format (includes unknown fields).
    Malformed = 1,
    UnknownVersion = 2,
    TooLarge = 3,
    /// A field breaks a stateless rule (length, format, action/version consistency).
    InvalidField = 4,
    BadSignature = 5,
    UnknownMember = 6,
    RemovedMember = 7,
    /// origin_seq at or below the origin's last accepted one: a replay.
    SeqReplayed = 8,
    /// origin_seq beyond last + 1: an event is missing in between.
    SeqGap = 9,
    /// Only the member that created an entity may change it.
    NotEntityOrigin = 10,
    /// version at or below the entity's head.
    StaleVersion = 11,
    /// version beyond head + 1.
    VersionGap = 12,
    PreviousHashMismatch = 13,
    EntityExists = 14,
    UnknownEntity = 15,
    EntityDeleted = 16,
    InsufficientApprovals = 17,
    GovernanceNonce = 18,
    /// The governance action contradicts the registry (duplicate member, last member...).
    GovernanceConflict = 19,
    /// The signer is not an approver this transaction kind accepts.
    UnauthorisedSigner = 20,
}

impl TxCode {
    pub const ALL: [TxCode; 21] = [
        TxCode::Ok,
        TxCode::Malformed,
        TxCode::UnknownVersion,
        TxCode::TooLarge,
        TxCode::InvalidField,
        TxCode::BadSignature,
        TxCode::UnknownMember,
        TxCode::RemovedMember,
        TxCode::SeqReplayed,
        TxCode::SeqGap,
        TxCode::NotEntityOrigin,
        TxCode::StaleVersion,
        TxCode::VersionGap,
        TxCode::PreviousHashMismatch,
        TxCode::EntityExists,
        TxCode::UnknownEntity,
        TxCode::EntityDeleted,
        TxCode::InsufficientApprovals,
        TxCode::GovernanceNonce,
        TxCode::GovernanceConflict,
        TxCode::UnauthorisedSigner,
    ];

    pub fn from_u32(code: u32) -> Option<TxCode> {
        TxCode::ALL.iter().copied().find(|c| *c as u32 == code)
    }

    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

/// Result codes of `abci_query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum QueryCode {
    Ok = 0,
    UnknownPath = 100,
    BadArgument = 101,
    NotFound = 102,
    /// A height range wider than the query allows.
    RangeTooLarge = 103,
}

/// The codespace reported with every non-zero code.
pub const CODESPACE: &str = "dome";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for (i, code) in TxCode::ALL.iter().enumerate() {
            assert_eq!(TxCode::from_u32(code.as_u32()), Some(*code));
            assert!(TxCode::ALL[..i].iter().all(|c| c.as_u32() != code.as_u32()));
        }
        assert_eq!(TxCode::from_u32(999), None);
    }
}
