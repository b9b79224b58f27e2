//! Brightpearl's error list as one line, for messages and logs.

use crate::generated::common::{ApiError, ErrorEnvelope};

/// `CODE message; CODE message` (a code alone where Brightpearl gives no message).
pub fn error_summary(errors: &[ApiError]) -> String {
    let listed = errors.iter().map(|e| match &e.message {
        Some(message) => format!("{} {message}", e.code),
        None => e.code.clone(),
    });
    listed.collect::<Vec<_>>().join("; ")
}

impl ErrorEnvelope {
    /// The errors as one line ([`error_summary`]).
    pub fn summary(&self) -> String {
        error_summary(&self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_with_and_without_messages() {
        let envelope: ErrorEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"CMNC-404","message":"No Contact Found"},{"code":"ORDC-005"}]}"#,
        )
        .unwrap();
        assert_eq!(envelope.summary(), "CMNC-404 No Contact Found; ORDC-005");
    }
}
