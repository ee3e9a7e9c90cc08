//! Shared pieces of the HMAC schemes: reading a hex or base64 digest out of a header,
//! checking it against every active secret, and the timestamp window. Kept in one place
//! so that each provider module states only its own wire format; the comparison here is
//! the only one, and it is constant time (`verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::Mac;
use hmac::digest::KeyInit;

use super::VerifyError;

/// `NoSecret` when no secret could sign anything: an empty key is one anybody can use.
pub(super) fn require_secret(secrets: &[&[u8]]) -> Result<(), VerifyError> {
    if secrets.iter().all(|key| key.is_empty()) {
        Err(VerifyError::NoSecret)
    } else {
        Ok(())
    }
}

/// The value of a header the scheme cannot do without.
pub(super) fn required_header<'a>(
    req: &super::Inbound<'a>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    req.headers
        .get(name)
        .ok_or(VerifyError::MissingHeader(name.into()))
}

/// The digest bytes of `<prefix><hex>` (hex in either case), or None when the shape or
/// the length is wrong. An empty prefix reads a bare hex digest.
pub(super) fn hex_signature(value: &str, prefix: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = hex::decode(value.trim().strip_prefix(prefix)?).ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// The digest bytes of a standard-alphabet, padded base64 value, or None when the shape
/// or the length is wrong.
pub(super) fn base64_signature(value: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(value.trim()).ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// Tries each non-empty secret as the key of a MAC over `message` (the pieces in order,
/// so a body is never copied to prepend a timestamp) against each candidate digest.
/// Several secrets exist during rotation; several candidates where the sender signs with
/// each of its own active secrets (Stripe, PagerDuty).
pub(super) fn matches_any<M: Mac + KeyInit + Clone>(
    secrets: &[&[u8]],
    message: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Result<(), VerifyError> {
    for key in secrets.iter().filter(|key| !key.is_empty()) {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            continue;
        };
        for part in message {
            mac.update(part);
        }
        // verify_slice compares in constant time and refuses a wrong length.
        if candidates
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

/// How a body signature is written in its header.
pub(super) enum Encoding {
    /// Hex (either case) after a fixed prefix (`sha256=`, or none).
    Hex(&'static str),
    /// Standard base64.
    Base64,
}

/// The most common scheme: one header holding an HMAC of the raw body, keyed with each
/// active secret in turn.
pub(super) fn verify_body_signature<M: Mac + KeyInit + Clone>(
    req: &super::Inbound<'_>,
    secrets: &[&[u8]],
    header: &'static str,
    encoding: Encoding,
) -> Result<(), VerifyError> {
    require_secret(secrets)?;
    let value = required_header(req, header)?;
    let len = <M as hmac::digest::OutputSizeUser>::output_size();
    let expected = match encoding {
        Encoding::Hex(prefix) => hex_signature(value, prefix, len),
        Encoding::Base64 => base64_signature(value, len),
    }
    .ok_or(VerifyError::MalformedHeader(header.into()))?;
    matches_any::<M>(secrets, &[req.body], &[expected])
}

/// Whether `presented` equals one of the secrets: for schemes that send the shared
/// secret itself (a token, a password, an API key). The length check leaks only the
/// length; `ct_eq` compares the bytes in constant time.
pub(super) fn equals_any(secrets: &[&[u8]], presented: &[u8]) -> Result<(), VerifyError> {
    use subtle::ConstantTimeEq;
    let matches = secrets
        .iter()
        .filter(|key| !key.is_empty())
        .any(|key| key.len() == presented.len() && bool::from(key.ct_eq(presented)));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Refuses a signed timestamp more than `window_secs` away from `now`, in either
/// direction: a timestamp far in the future is as suspect as an old one.
pub(super) fn within_window(
    now: DateTime<Utc>,
    signed_at: i64,
    window_secs: i64,
) -> Result<(), VerifyError> {
    let off_by = now.timestamp().saturating_sub(signed_at);
    if off_by.unsigned_abs() > window_secs.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp {
            off_by,
            window: window_secs,
        });
    }
    Ok(())
}

/// Unix seconds written as digits only: `i64::from_str` would also take a sign, and a
/// fraction or exponent means the sender is not speaking the scheme.
pub(super) fn unix_seconds(raw: &str) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use hmac::Hmac;
    use sha2::Sha256;

    use super::*;

    #[test]
    fn hex_signature_needs_the_prefix_and_the_length() {
        assert_eq!(hex_signature("sha1=0a0B", "sha1=", 2), Some(vec![10, 11]));
        assert_eq!(hex_signature("0a0b", "sha1=", 2), None);
        assert_eq!(hex_signature("sha1=0a0b0c", "sha1=", 2), None);
        assert_eq!(hex_signature("sha1=zz0b", "sha1=", 2), None);
    }

    #[test]
    fn base64_signature_needs_standard_padded_base64_of_the_length() {
        assert_eq!(base64_signature("AAE=", 2), Some(vec![0, 1]));
        assert_eq!(base64_signature("AAE", 2), None);
        assert_eq!(base64_signature("AAEC", 2), None);
    }

    #[test]
    fn message_pieces_are_signed_as_one_message() {
        let expected = {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").unwrap();
            mac.update(b"12.body");
            mac.finalize().into_bytes().to_vec()
        };
        let pieces: [&[u8]; 3] = [b"12", b".", b"body"];
        assert_eq!(
            matches_any::<Hmac<Sha256>>(&[b"k"], &pieces, &[vec![0; 32], expected]),
            Ok(())
        );
        assert_eq!(
            matches_any::<Hmac<Sha256>>(&[b"other"], &pieces, &[vec![0; 32]]),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn window_is_inclusive_and_applies_both_ways() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        assert_eq!(within_window(now, 700, 300), Ok(()));
        assert_eq!(within_window(now, 1_300, 300), Ok(()));
        assert_eq!(
            within_window(now, 699, 300),
            Err(VerifyError::StaleTimestamp {
                off_by: 301,
                window: 300
            })
        );
        assert_eq!(
            within_window(now, 1_301, 300),
            Err(VerifyError::StaleTimestamp {
                off_by: -301,
                window: 300
            })
        );
    }

    #[test]
    fn empty_secrets_are_no_secret() {
        assert_eq!(require_secret(&[]), Err(VerifyError::NoSecret));
        assert_eq!(require_secret(&[b""]), Err(VerifyError::NoSecret));
        assert_eq!(require_secret(&[b"", b"k"]), Ok(()));
    }
}
