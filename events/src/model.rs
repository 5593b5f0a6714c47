//! The transactions that travel on the bus: catalogue events and governance proposals.
//!
//! Every struct refuses unknown fields so that two nodes never disagree about what a
//! transaction says; [`Transaction::validate`] checks everything that can be checked
//! without the bus state (the ABCI app checks the rest).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::canonical::MAX_SAFE_INTEGER;
use crate::crypto::{ContentHash, PublicKey, Signature};

pub const MAX_ID_LEN: usize = 128;
pub const MAX_MEMBER_ID_LEN: usize = 64;
pub const MAX_ENTITY_TYPE_LEN: usize = 64;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_AUDIENCE: usize = 64;
pub const MAX_APPROVALS: usize = 256;

/// Why a transaction is structurally invalid, independent of bus state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        reason: reason.into(),
    }
}

/// A member's identifier: 1 to 64 characters of `[a-z0-9._-]`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub String);

impl MemberId {
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidField> {
        let id = MemberId(id.into());
        id.validate("member id")?;
        Ok(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn validate(&self, field: &'static str) -> Result<(), InvalidField> {
        let s = &self.0;
        if s.is_empty() || s.len() > MAX_MEMBER_ID_LEN {
            return Err(invalid(field, "must have 1 to 64 characters"));
        }
        let first_ok = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        });
        if !first_ok || !rest_ok {
            return Err(invalid(
                field,
                format!("{s:?} is not of the form [a-z0-9][a-z0-9._-]*"),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which exact version of which entity an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRef {
    /// TM Forum resource name, e.g. `productOffering`.
    #[serde(rename = "type")]
    pub entity_type: String,
    pub id: String,
    pub version: u64,
}

impl EntityRef {
    /// The key under which the bus keeps this entity's head.
    pub fn key(&self) -> String {
        format!("{}/{}", self.entity_type, self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    StateChange,
    Delete,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::StateChange => "state_change",
            Action::Delete => "delete",
        }
    }
}

/// Who is entitled to fetch the announced version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Audience {
    All,
    Members(Vec<MemberId>),
}

impl Audience {
    pub fn includes(&self, member: &MemberId) -> bool {
        match self {
            Audience::All => true,
            Audience::Members(list) => list.contains(member),
        }
    }

    /// Compact form for event indexing: `*` or the comma-separated member ids.
    pub fn index_value(&self) -> String {
        match self {
            Audience::All => "*".to_owned(),
            Audience::Members(list) => list
                .iter()
                .map(MemberId::as_str)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The metadata a marketplace publishes when it changes a catalogue entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEvent {
    pub origin: MemberId,
    pub origin_seq: u64,
    pub entity: EntityRef,
    pub action: Action,
    /// sha256 of the canonical JSON of the announced version; absent for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<ContentHash>,
    /// Content hash of the version this one replaces; absent for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<ContentHash>,
    /// URL of the exact, immutable version at the origin.
    pub location: String,
    pub audience: Audience,
    /// RFC 3339 UTC timestamp with a trailing `Z`, set by the origin.
    pub issued_at: String,
}

impl CatalogueEvent {
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.origin.validate("origin")?;
        check_counter("origin_seq", self.origin_seq)?;
        check_counter("entity.version", self.entity.version)?;
        check_token(
            "entity.type",
            &self.entity.entity_type,
            MAX_ENTITY_TYPE_LEN,
            false,
        )?;
        check_token("entity.id", &self.entity.id, MAX_ID_LEN, true)?;
        check_url("location", &self.location)?;
        check_timestamp("issued_at", &self.issued_at)?;
        if let Audience::Members(list) = &self.audience {
            if list.is_empty() || list.len() > MAX_AUDIENCE {
                return Err(invalid("audience", "must list 1 to 64 members"));
            }
            for (i, member) in list.iter().enumerate() {
                member.validate("audience")?;
                if list[..i].contains(member) {
                    return Err(invalid("audience", format!("{member} listed twice")));
                }
            }
        }
        match self.action {
            Action::Create => {
                if self.entity.version != 1 {
                    return Err(invalid("entity.version", "a create announces version 1"));
                }
                if self.previous_hash.is_some() {
                    return Err(invalid("previous_hash", "a create has no previous version"));
                }
                if self.content_hash.is_none() {
                    return Err(invalid("content_hash", "required for a create"));
                }
            }
            Action::Update | Action::StateChange | Action::Delete => {
                if self.entity.version < 2 {
                    return Err(invalid(
                        "entity.version",
                        "a change announces version 2 or later",
                    ));
                }
                if self.previous_hash.is_none() {
                    return Err(invalid("previous_hash", "required for a change"));
                }
                let is_delete = self.action == Action::Delete;
                if is_delete && self.content_hash.is_some() {
                    return Err(invalid("content_hash", "a delete has no content"));
                }
                if !is_delete && self.content_hash.is_none() {
                    return Err(invalid("content_hash", "required for an update"));
                }
            }
        }
        Ok(())
    }
}

/// A member as the registry on the bus knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInfo {
    pub id: MemberId,
    pub public_key: PublicKey,
    /// Where the member's TMF APIs are served; subscribers fetch versions from here.
    pub base_url: String,
}

impl MemberInfo {
    pub fn validate(&self) -> Result<(), InvalidField> {
        self.id.validate("member.id")?;
        check_url("member.base_url", &self.base_url)
    }
}

/// A change to the federation itself, approved by more than 2/3 of the active members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceProposal {
    /// Must be the bus's last governance nonce + 1: approvals cannot be replayed.
    pub nonce: u64,
    pub action: GovernanceAction,
    pub issued_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GovernanceAction {
    AddMember(MemberInfo),
    RemoveMember {
        member: MemberId,
    },
    RotateKey {
        member: MemberId,
        new_public_key: PublicKey,
    },
    /// Sets the voting power of a CometBFT validator (0 removes it).
    SetValidatorPower {
        validator_public_key: PublicKey,
        power: u64,
    },
}

impl GovernanceProposal {
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_counter("nonce", self.nonce)?;
        check_timestamp("issued_at", &self.issued_at)?;
        match &self.action {
            GovernanceAction::AddMember(info) => info.validate(),
            GovernanceAction::RemoveMember { member } => member.validate("member"),
            GovernanceAction::RotateKey { member, .. } => member.validate("member"),
            GovernanceAction::SetValidatorPower { power, .. } => {
                // CometBFT caps total power at MaxInt64 / 8.
                if *power > (i64::MAX as u64) / 8 {
                    return Err(invalid("power", "exceeds CometBFT's maximum voting power"));
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Payload {
    CatalogueEvent(CatalogueEvent),
    Governance(GovernanceProposal),
}

/// One member's signature over a transaction's signing bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub signer: MemberId,
    pub signature: Signature,
}

/// The versioned envelope: what a transaction's bytes on the bus decode to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub v: u32,
    pub payload: Payload,
    pub signatures: Vec<Approval>,
}

impl Transaction {
    /// Checks everything that does not need the bus state.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.signatures.is_empty() {
            return Err(invalid("signatures", "at least one is required"));
        }
        if self.signatures.len() > MAX_APPROVALS {
            return Err(invalid("signatures", "too many"));
        }
        for (i, approval) in self.signatures.iter().enumerate() {
            approval.signer.validate("signatures.signer")?;
            if self.signatures[..i]
                .iter()
                .any(|a| a.signer == approval.signer)
            {
                return Err(invalid(
                    "signatures",
                    format!("{} signed twice", approval.signer),
                ));
            }
        }
        match &self.payload {
            Payload::CatalogueEvent(event) => {
                event.validate()?;
                if self.signatures.len() != 1 || self.signatures[0].signer != event.origin {
                    return Err(invalid(
                        "signatures",
                        "a catalogue event carries exactly one signature, its origin's",
                    ));
                }
                Ok(())
            }
            Payload::Governance(proposal) => proposal.validate(),
        }
    }
}

fn check_counter(field: &'static str, value: u64) -> Result<(), InvalidField> {
    if value == 0 || value > MAX_SAFE_INTEGER {
        return Err(invalid(field, "must be between 1 and 2^53 - 1"));
    }
    Ok(())
}

fn check_token(
    field: &'static str,
    value: &str,
    max: usize,
    allow_punctuation: bool,
) -> Result<(), InvalidField> {
    if value.is_empty() || value.len() > max {
        return Err(invalid(field, format!("must have 1 to {max} characters")));
    }
    let ok = value.bytes().all(|b| {
        b.is_ascii_alphanumeric() || (allow_punctuation && matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if !ok {
        return Err(invalid(
            field,
            format!("{value:?} has characters outside the allowed set"),
        ));
    }
    Ok(())
}

fn check_url(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.len() > MAX_URL_LEN {
        return Err(invalid(field, "longer than 2048 characters"));
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| invalid(field, "must be an http(s) URL"))?;
    if rest.is_empty()
        || rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(field, "must be an http(s) URL without spaces"));
    }
    Ok(())
}

/// Accepts `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the only timestamp form the bus signs.
pub fn check_timestamp(field: &'static str, value: &str) -> Result<(), InvalidField> {
    let bad = || {
        invalid(
            field,
            format!("{value:?} is not an RFC 3339 UTC time ending in Z"),
        )
    };
    let b = value.as_bytes();
    if b.len() < 20 || b.len() > 35 || b[b.len() - 1] != b'Z' {
        return Err(bad());
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = value.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|(i, c)| b[*i] != *c) {
        return Err(bad());
    }
    let (Some(_year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return Err(bad());
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let tail = &value[19..value.len() - 1];
    if !tail.is_empty() {
        let fraction = tail.strip_prefix('.').ok_or_else(bad)?;
        if fraction.is_empty() || !fraction.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
    }
    Ok(())
}
