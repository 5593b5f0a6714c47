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
