//! Content hashes and member signatures.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::Signer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;

use crate::canonical::{to_canonical_string, CanonicalError};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid hex content hash: expected 64 lowercase hex digits")]
    BadHash,
    #[error("invalid public key: {0}")]
    BadPublicKey(String),
    #[error("invalid signature encoding: {0}")]
    BadSignatureEncoding(String),
    #[error("signature does not verify")]
    SignatureMismatch,
}

/// sha256 of the canonical JSON of one exact entity version, lowercase hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    /// Hash of the RFC 8785 canonical form of a JSON document.
    pub fn of_json<T: Serialize + ?Sized>(document: &T) -> Result<Self, CanonicalError> {
        Ok(Self::of_bytes(to_canonical_string(document)?.as_bytes()))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(CryptoError::BadHash);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| CryptoError::BadHash)?;
        Ok(ContentHash(out))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ContentHash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// An ed25519 public key, standard base64 on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| CryptoError::BadPublicKey(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadPublicKey("expected 32 bytes".into()))?;
        // Refuse points that are not on the curve now rather than at first verification.
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| CryptoError::BadPublicKey(e.to_string()))?;
        Ok(PublicKey(bytes))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|e| CryptoError::BadPublicKey(e.to_string()))
    }

    /// Strict RFC 8032 verification (no malleable signatures, no small-order keys).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        self.prepare()?.verify(message, signature)
    }

    /// The key with its curve point decompressed, for verifying many signatures: the
    /// decompression is a field square root, a sizeable part of one verification.
    pub fn prepare(&self) -> Result<PreparedKey, CryptoError> {
        Ok(PreparedKey(self.verifying_key()?))
    }
}

/// A [`PublicKey`] ready to verify with ([`PublicKey::prepare`]); verifies exactly as
/// [`PublicKey::verify`] does.
#[derive(Clone, Debug)]
pub struct PreparedKey(ed25519_dalek::VerifyingKey);

impl PreparedKey {
    /// Strict RFC 8032 verification (no malleable signatures, no small-order keys).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| CryptoError::SignatureMismatch)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PublicKey::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature, standard base64 on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| CryptoError::BadSignatureEncoding(e.to_string()))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadSignatureEncoding("expected 64 bytes".into()))?;
        Ok(Signature(bytes))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Signature::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// A member's signing key. The secret never leaves this type except through
/// [`MemberKeypair::secret_seed`], which key files use.
#[derive(Clone)]
pub struct MemberKeypair {
    signing: ed25519_dalek::SigningKey,
}

impl MemberKeypair {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        MemberKeypair {
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Reads a key file's content: the 32-byte seed in standard base64.
    pub fn from_base64_seed(text: &str) -> Result<Self, CryptoError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| CryptoError::BadPublicKey(format!("secret seed: {e}")))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadPublicKey("secret seed must be 32 bytes".into()))?;
        Ok(Self::from_seed(seed))
    }

    pub fn secret_seed_base64(&self) -> String {
        BASE64.encode(self.signing.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for MemberKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MemberKeypair(public: {})",
            self.public_key().to_base64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(hex_text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut out).expect("test vector hex");
        out
    }

    /// RFC 8032 section 7.1, tests 1 to 3.
    #[test]
    fn rfc8032_vectors() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (secret, public, message, signature) in vectors {
            let keypair = MemberKeypair::from_seed(seed(secret));
            assert_eq!(hex::encode(keypair.public_key().0), public);
            let message = hex::decode(message).expect("hex");
            let produced = keypair.sign(&message);
            assert_eq!(hex::encode(produced.0), signature);
            keypair
                .public_key()
                .verify(&message, &produced)
                .expect("vector verifies");
            let mut tampered = message.clone();
            tampered.push(0);
            assert_eq!(
                keypair.public_key().verify(&tampered, &produced),
                Err(CryptoError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn hashes_and_keys_round_trip_through_text() {
        let hash = ContentHash::of_bytes(b"abc");
        assert_eq!(
            hash.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ContentHash::from_hex(&hash.to_hex()), Ok(hash));
        assert_eq!(
            ContentHash::from_hex(&hash.to_hex().to_uppercase()),
            Err(CryptoError::BadHash)
        );
        let key = MemberKeypair::from_seed([7; 32]).public_key();
        assert_eq!(PublicKey::from_base64(&key.to_base64()), Ok(key));
        assert!(PublicKey::from_base64("AAAA").is_err());
    }

    #[test]
    fn content_hash_ignores_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":[true,null]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[true,null],"b":1.0}"#).unwrap();
        assert_eq!(ContentHash::of_json(&a), ContentHash::of_json(&b));
    }
}
