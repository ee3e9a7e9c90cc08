//! Signing requests the way senders do, written here from the specs rather than taken
//! from the product code, so a bug in one does not hide in the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Hub-Signature-256`.
pub fn github(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac256(secret.as_bytes(), &[body]))
    )
}

/// `webhook-signature` for a `whsec_…` secret.
pub fn standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let ts = timestamp.to_string();
    let sig = hmac256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(sig))
}

/// A fresh `whsec_` secret.
pub fn new_whsec() -> String {
    switchyard_domain::secrets::new_signing_secret()
}
