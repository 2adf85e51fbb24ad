//! Which request headers hold secrets, and how they are shown.

/// Whether a request header carries a secret: `Authorization`, `Proxy-Authorization`, `Cookie`,
/// or any name containing `token`, `secret`, `key`, `password` or `signature`.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "key", "password", "signature"]
        .iter()
        .any(|word| name.contains(word))
}

/// The prefix every masked value starts with.
pub const MASK: &str = "••••";

/// A secret as shown: `••••` and its last 4 characters (nothing of values shorter than 12).
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count < 12 {
        return MASK.to_owned();
    }
    let tail: String = value.chars().skip(count - 4).collect();
    format!("{MASK}{tail}")
}

/// Whether `sent` is the masked form of `stored` (a client sending back what it was shown).
pub fn is_masked_form_of(sent: &str, stored: &str) -> bool {
    sent.starts_with(MASK) && sent == mask(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_recognised_by_name() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Client-Secret",
            "X-Password",
            "X-Signature",
        ] {
            assert!(is_secret_header(name), "{name}");
        }
        for name in ["Content-Type", "Accept", "X-Request-Id"] {
            assert!(!is_secret_header(name), "{name}");
        }
    }

    #[test]
    fn masks_show_only_the_last_four_characters() {
        assert_eq!(mask("Bearer abcdefgh1234"), "••••1234");
        assert_eq!(mask("short"), "••••");
        assert!(is_masked_form_of("••••1234", "Bearer abcdefgh1234"));
        assert!(!is_masked_form_of("••••9999", "Bearer abcdefgh1234"));
        assert!(!is_masked_form_of(
            "Bearer new-value-1234",
            "Bearer abcdefgh1234"
        ));
    }
}
