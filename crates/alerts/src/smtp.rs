//! Email alerts through the operator's SMTP server (`CRONHOOK_SMTP_URL`).
//!
//! `smtp://host:port` is plain SMTP (opportunistic STARTTLS is not attempted, so a server that
//! offers none still works), `smtp://host:port?tls=required` requires STARTTLS, `smtps://host`
//! is TLS from the first byte; `user:password@` in the URL authenticates. Each send opens its own
//! connection with 10 s connect and command timeouts, so one hanging server costs one delivery
//! its deadline and nothing else.

use std::str::FromStr as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::Failure;
use crate::render::Rendered;

/// SMTP connect and command timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom email alerts are sent. `Debug` never shows the password.
#[derive(Clone)]
pub struct SmtpConfig {
    url: String,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &redact(&self.url))
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// Why the SMTP settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("CRONHOOK_SMTP_URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("CRONHOOK_SMTP_FROM `{from}` is not an email address: {reason}")]
    From { from: String, reason: String },
}

/// A URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

impl SmtpConfig {
    /// Checks the URL and the sender. Without `from`, mail comes from `cronhook@` the SMTP
    /// server's host.
    pub fn new(url: &str, from: Option<&str>) -> Result<SmtpConfig, SmtpConfigError> {
        let url_error = |reason: String| SmtpConfigError::Url {
            url: redact(url),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|error| url_error(error.to_string()))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(url_error(
                "must start with smtp:// (add ?tls=required for STARTTLS) or smtps://".into(),
            ));
        }
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| url_error("names no host".into()))?
            .to_owned();
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| url_error(error.to_string()))?;
        let from_text = from
            .map(str::to_owned)
            .unwrap_or_else(|| format!("cronhook <cronhook@{}>", host.trim_matches(['[', ']'])));
        let from = Mailbox::from_str(&from_text).map_err(|error| SmtpConfigError::From {
            from: from_text.clone(),
            reason: error.to_string(),
        })?;
        Ok(SmtpConfig {
            url: url.to_owned(),
            from,
        })
    }

    /// Sends one email with a plain-text and an HTML part to every address in `to`.
    pub(crate) async fn send(&self, to: &[String], rendered: &Rendered) -> Result<(), Failure> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(rendered.subject.clone());
        for address in to {
            let mailbox = Mailbox::from_str(address).map_err(|error| {
                Failure::permanent(format!("`{address}` is not an email address: {error}"))
            })?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(rendered.plain_text()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(rendered.html()),
                    ),
            )
            .map_err(|error| Failure::permanent(format!("cannot build the email: {error}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map_err(|error| Failure::permanent(format!("smtp: {error}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // A permanent (5xx) answer will not change on a retry; everything else might.
                let retryable = !error.is_permanent();
                Err(Failure {
                    message: format!("smtp: {}", describe(&error)),
                    retryable,
                })
            }
        }
    }
}

/// An SMTP error with its causes, without the password (lettre's errors never include it).
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_the_password_never_shown() {
        let config = SmtpConfig::new(
            "smtp://alice:s3cret@mail.example.com:587?tls=required",
            Some("cronhook <alerts@example.com>"),
        )
        .expect("valid");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("****"), "{shown}");
        let error = SmtpConfig::new("http://alice:s3cret@mail.example.com", None)
            .expect_err("wrong scheme");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(SmtpConfig::new("smtp://mail.example.com", Some("not an address")).is_err());
        let default_from = SmtpConfig::new("smtps://mail.example.com", None).expect("valid");
        assert_eq!(
            default_from.from.email.to_string(),
            "cronhook@mail.example.com"
        );
    }
}
