//! Secrets at rest and in the open. Provider secrets, signing secrets and destination
//! credentials are sealed with AES-256-GCM under the server's key before they reach the
//! database, each blob naming the key that sealed it; tokens and keys are drawn from the
//! OS RNG. Nothing here logs, and `Debug` never shows key material.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The first sealing format: version byte, nonce, ciphertext. Still opened, never
/// written.
const V1: u8 = 1;
/// Version byte, the sealing key's id, nonce, ciphertext; the version and key id are
/// authenticated with the ciphertext.
const V2: u8 = 2;
const KEY_ID_LEN: usize = 4;
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
    #[error(
        "a stored secret was sealed with a key this server does not have (add it to SWITCHYARD_PREVIOUS_SECRET_KEYS)"
    )]
    UnknownKey,
}

type KeyId = [u8; KEY_ID_LEN];

#[derive(Clone)]
struct Key {
    id: KeyId,
    cipher: Aes256Gcm,
}

impl Key {
    fn from_hex(hex_key: &str) -> Result<Key, SecretError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SecretError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        // Names the key without revealing it: a hash, cut short.
        let digest = Sha256::digest([b"switchyard key id:".as_slice(), &bytes].concat());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Key { id, cipher })
    }
}

/// The key that seals secrets at rest (AES-256-GCM), and the keys it replaced: every
/// sealed blob names its key, so after a key change old blobs still open and
/// `switchyard rekey` can re-seal them with the current one.
#[derive(Clone)]
pub struct SecretKey {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, SecretError> {
        Ok(SecretKey {
            current: Key::from_hex(hex_key)?,
            previous: Vec::new(),
        })
    }

    /// Also opens what these earlier keys sealed.
    pub fn with_previous<'a>(
        mut self,
        hex_keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SecretError> {
        for hex_key in hex_keys {
            self.previous.push(Key::from_hex(hex_key)?);
        }
        Ok(self)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + plaintext.len() + 16);
        out.push(V2);
        out.extend_from_slice(&self.current.id);
        let payload = Payload {
            msg: plaintext,
            aad: &out,
        };
        // Encryption with a valid key and a fresh nonce cannot fail for inputs this size.
        let sealed = self
            .current
            .cipher
            .encrypt(&nonce, payload)
            .unwrap_or_default();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, blob: &[u8]) -> Result<Vec<u8>, SecretError> {
        match blob {
            [V2, rest @ ..] if rest.len() > KEY_ID_LEN + NONCE_LEN => {
                let (id, rest) = rest.split_at(KEY_ID_LEN);
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let key = self
                    .keys()
                    .find(|k| k.id == id)
                    .ok_or(SecretError::UnknownKey)?;
                let payload = Payload {
                    msg: sealed,
                    aad: &blob[..1 + KEY_ID_LEN],
                };
                key.cipher
                    .decrypt(Nonce::from_slice(nonce), payload)
                    .map_err(|_| SecretError::Unseal)
            }
            [V1, rest @ ..] if rest.len() > NONCE_LEN => {
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                self.keys()
                    .find_map(|k| k.cipher.decrypt(Nonce::from_slice(nonce), sealed).ok())
                    .ok_or(SecretError::Unseal)
            }
            _ => Err(SecretError::Unseal),
        }
    }

    /// Whether `blob` should be sealed again with the current key.
    pub fn is_stale(&self, blob: &[u8]) -> bool {
        !matches!(blob, [V2, rest @ ..] if rest.starts_with(&self.current.id))
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(&self.previous)
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
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(key().open(&sealed).unwrap(), b"whsec_abc");
        let other = SecretKey::from_hex(&"11".repeat(32)).unwrap();
        assert_eq!(other.open(&sealed), Err(SecretError::UnknownKey));
    }

    #[test]
    fn after_a_key_change_old_blobs_open_with_the_previous_key_and_are_stale() {
        let old = key();
        let sealed = old.seal(b"token");
        let new = SecretKey::from_hex(&"22".repeat(32)).unwrap();
        assert_eq!(new.open(&sealed), Err(SecretError::UnknownKey));
        let rotated = new.with_previous([DEV_KEY_HEX]).unwrap();
        assert_eq!(rotated.open(&sealed).unwrap(), b"token");
        assert!(rotated.is_stale(&sealed));
        let resealed = rotated.seal(b"token");
        assert!(!rotated.is_stale(&resealed));
        assert_eq!(old.open(&resealed), Err(SecretError::UnknownKey));
    }

    #[test]
    fn the_key_id_is_authenticated() {
        let a = key().with_previous([&*"33".repeat(32)]).unwrap();
        let mut sealed = a.seal(b"x");
        // Claiming another key id does not make the blob open with it, or at all.
        let other = SecretKey::from_hex(&"33".repeat(32)).unwrap();
        sealed[1..5].copy_from_slice(&other.current.id);
        assert_eq!(a.open(&sealed), Err(SecretError::Unseal));
    }

    #[test]
    fn first_format_blobs_still_open() {
        let k = key();
        let nonce = [7u8; NONCE_LEN];
        let ct = k
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), b"legacy".as_slice())
            .unwrap();
        let blob = [[V1].as_slice(), &nonce, &ct].concat();
        assert_eq!(k.open(&blob).unwrap(), b"legacy");
        assert!(k.is_stale(&blob));
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
        assert!(key().open(&[V2, 1, 2]).is_err());
        assert!(key().open(&[V1, 1, 2]).is_err());
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
