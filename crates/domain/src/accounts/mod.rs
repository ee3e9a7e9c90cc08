//! People: password hashing and the rules for what a person may sign up with. Sessions
//! and memberships live in the store.

mod password;
mod roles;

pub use password::{PasswordError, hash_password, verify_nobody, verify_password};
pub use roles::{Action, Role};

/// A plausible email address, trimmed: something, `@`, a domain; nothing that could
/// smuggle a second header or recipient.
pub fn email_address(raw: &str) -> Result<String, String> {
    let address = raw.trim();
    let plausible = address.len() <= 254
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !address.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"')
        });
    if plausible {
        Ok(address.to_owned())
    } else {
        Err(format!("{raw:?} is not an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_trimmed_and_checked() {
        assert_eq!(
            email_address(" ada@example.com ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a b@c.d",
            "a@b.c\r\nBcc: x@y.z",
            "\"a\"@b.c",
        ] {
            assert!(email_address(bad).is_err(), "{bad:?}");
        }
    }
}
