//! TEST KEYS — NOT SECRET. Deterministic member keys for local nets, tests and benchmarks.
//!
//! Each seed is the sha256 of a public string, so anyone can derive these keys; never use
//! them for a real federation.

use sha2::{Digest, Sha256};

use crate::crypto::MemberKeypair;
use crate::model::{MemberId, MemberInfo};

/// `member-a`, `member-b`, ... then `member-26`, `member-27`, ...
pub fn member_id(index: u32) -> MemberId {
    let id = if index < 26 {
        format!("member-{}", (b'a' + index as u8) as char)
    } else {
        format!("member-{index}")
    };
    MemberId(id)
}

pub fn member_keypair(index: u32) -> MemberKeypair {
    let seed: [u8; 32] = Sha256::digest(format!("dome public test key #{index}")).into();
    MemberKeypair::from_seed(seed)
}

/// The member's registry entry; its base URL is a placeholder on loopback.
pub fn member_info(index: u32) -> MemberInfo {
    MemberInfo {
        id: member_id(index),
        public_key: member_keypair(index).public_key(),
        base_url: format!("http://127.0.0.1:{}", 18080 + index),
    }
}

/// A valid create event of a product offering by test member `origin`: the shape benchmarks
/// and load generators publish by the thousand.
pub fn sample_create(origin: u32, origin_seq: u64, id: &str) -> crate::CatalogueEvent {
    crate::CatalogueEvent {
        origin: member_id(origin),
        origin_seq,
        entity: crate::EntityRef {
            entity_type: "productOffering".into(),
            id: id.to_owned(),
            version: 1,
        },
        action: crate::Action::Create,
        content_hash: Some(crate::ContentHash::of_bytes(id.as_bytes())),
        previous_hash: None,
        location: format!(
            "http://127.0.0.1:{}/tmf-api/productCatalogManagement/v4/productOffering/{id}/version/1",
            18080 + origin
        ),
        audience: crate::Audience::All,
        issued_at: "2026-11-29T12:00:00.000Z".into(),
    }
}
