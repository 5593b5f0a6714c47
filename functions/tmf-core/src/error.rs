//! The TM Forum `Error` body (TMF630) and the HTTP status that goes with it.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes this implementation uses in `Error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// The body is JSON but does not satisfy the resource's `_Create`/`_Update` schema.
    InvalidBody,
    /// The request tries to set a field only the server sets.
    ReadOnlyField,
    /// A query parameter (filter, `fields`, `sort`, `offset`, `limit`) is malformed.
    InvalidQuery,
    /// `limit` above the maximum page size.
    LimitTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A concurrent change won, or the entity already exists.
    Conflict,
    /// `If-Match` does not name the current version.
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    NotImplemented,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "InvalidJson",
            Self::InvalidBody => "InvalidBody",
            Self::ReadOnlyField => "ReadOnlyField",
            Self::InvalidQuery => "InvalidQuery",
            Self::LimitTooLarge => "LimitTooLarge",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::NotImplemented => "NotImplemented",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Internal => "InternalError",
        }
    }

    /// The HTTP status answered with this code.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::InvalidBody
            | Self::ReadOnlyField
            | Self::InvalidQuery
            | Self::LimitTooLarge => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::NotImplemented => 501,
            Self::ServiceUnavailable => 503,
            Self::Internal => 500,
        }
    }

    /// The short explanation used as `Error.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidJson => "Malformed JSON body",
            Self::InvalidBody => "Invalid request body",
            Self::ReadOnlyField => "Attribute set by the server",
            Self::InvalidQuery => "Invalid query",
            Self::LimitTooLarge => "Page size too large",
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Not allowed",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::NotImplemented => "Not implemented",
            Self::ServiceUnavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }
}

/// TMF630 `Error`: `{code, reason, message, status}`; `status` is the HTTP status as a string,
/// as the swagger `Error` definition types it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct TmfError {
    pub code: String,
    pub reason: String,
    pub message: String,
    pub status: String,
}

impl TmfError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_string(),
            reason: code.reason().to_string(),
            message: message.into(),
            status: code.status().to_string(),
        }
    }

    /// The HTTP status (500 if `status` was tampered with).
    pub fn http_status(&self) -> u16 {
        self.status
            .parse()
            .ok()
            .filter(|s| (400..=599).contains(s))
            .unwrap_or(500)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_tmf630_shape() {
        let e = TmfError::new(
            ErrorCode::InvalidBody,
            "name: required attribute is missing",
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": "InvalidBody",
                "reason": "Invalid request body",
                "message": "name: required attribute is missing",
                "status": "400"
            })
        );
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn every_code_has_a_client_or_server_status() {
        use ErrorCode::*;
        for code in [
            InvalidJson,
            InvalidBody,
            ReadOnlyField,
            InvalidQuery,
            LimitTooLarge,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PreconditionFailed,
            PayloadTooLarge,
            UnsupportedMediaType,
            NotImplemented,
            ServiceUnavailable,
            Internal,
        ] {
            let e = TmfError::new(code, "x");
            assert_eq!(e.http_status(), code.status());
            assert!(!code.reason().is_empty());
        }
        let mut odd = TmfError::new(NotFound, "x");
        odd.status = "abc".into();
        assert_eq!(odd.http_status(), 500);
    }
}
