//! Secrets at rest and in the open. Provider secrets and signing secrets are sealed with
//! AES-256-GCM under the server's key before they reach the database; tokens and keys are
//! drawn from the OS RNG. Nothing here logs, and `Debug` never shows key material.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// Format byte in front of every sealed blob, so the scheme can change later.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The development key: fixed so a restarted dev server can still open what it sealed.
/// `SWITCHYARD_ENV=production` refuses to start with it.
pub const DEV_KEY_HEX: &str = "5357495443485941524420444556454c4f504d454e54204b4559202d20444f4e";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("a stored secret could not be opened (wrong SWITCHYARD_SECRET_KEY?)")]
    Unseal,
}

#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SecretError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey(cipher))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a fresh nonce cannot fail for inputs this size.
        let sealed = self.0.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, blob: &[u8]) -> Result<Vec<u8>, SecretError> {
        match blob {
            [VERSION, rest @ ..] if rest.len() > NONCE_LEN => {
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                self.0
                    .decrypt(Nonce::from_slice(nonce), sealed)
                    .map_err(|_| SecretError::Unseal)
            }
            _ => Err(SecretError::Unseal),
        }
    }
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_hex(DEV_KEY_HEX).unwrap()
    }

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let sealed = key().seal(b"whsec_abc");
        assert_ne!(&sealed[13..], b"whsec_abc");
        assert_eq!(key().open(&sealed).unwrap(), b"whsec_abc");
        let other = SecretKey::from_hex(&"11".repeat(32)).unwrap();
        assert_eq!(other.open(&sealed), Err(SecretError::Unseal));
    }

    #[test]
    fn sealing_twice_gives_different_blobs() {
        assert_ne!(key().seal(b"x"), key().seal(b"x"));
    }

    #[test]
    fn tampered_or_short_blobs_do_not_open() {
        let mut sealed = key().seal(b"secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(key().open(&sealed).is_err());
        assert!(key().open(&[]).is_err());
        assert!(key().open(&[VERSION, 1, 2]).is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(SecretKey::from_hex("abc").unwrap_err(), SecretError::BadKey);
        assert_eq!(
            SecretKey::from_hex(&"zz".repeat(32)).unwrap_err(),
            SecretError::BadKey
        );
    }

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn signing_secrets_decode_to_32_bytes() {
        let secret = new_signing_secret();
        let key = crate::providers::decode_secret(&secret).unwrap();
        assert_eq!(key.len(), 32);
    }
}
