//! Transaction hashes as CometBFT computes and prints them.

use sha2::{Digest, Sha256};

/// The CometBFT hash of a transaction: sha256 of its bytes, uppercase hex (the form the
/// RPC prints and the `tx` RPC is asked with).
pub fn tx_hash(bytes: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(bytes))
}

/// Parses a transaction hash given as 64 hex digits (either case).
pub(crate) fn parse_tx_hash(text: &str) -> Option<tendermint::Hash> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(tendermint::Hash::Sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_uppercase_sha256() {
        assert_eq!(
            tx_hash(b"abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
        assert_eq!(tx_hash(b"").len(), 64);
    }

    #[test]
    fn hash_round_trips_through_tendermint() {
        let text = tx_hash(b"some transaction");
        let hash = parse_tx_hash(&text).expect("valid");
        assert_eq!(hash.to_string(), text);
        assert_eq!(parse_tx_hash(&text.to_lowercase()), Some(hash));
        assert_eq!(parse_tx_hash("ABC"), None);
        assert_eq!(parse_tx_hash(&"G".repeat(64)), None);
    }
}
