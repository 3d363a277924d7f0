//! Request bodies in, JSON and problem documents out.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;

/// The response body of every route: a buffer, or a stream for SSE.
pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (API.md: over 64 KiB is `413`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = simd_json::serde::to_vec(value).expect("our response types always serialize");
    with_type(status, Bytes::from(bytes), APPLICATION_JSON)
}

/// A response of already-encoded JSON.
pub fn raw_json(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    with_type(status, bytes.into(), APPLICATION_JSON)
}

/// A response with a body of the given content type.
pub fn with_type(status: StatusCode, bytes: Bytes, content_type: HeaderValue) -> Response<Body> {
    let mut response = Response::new(Full::new(bytes).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A response without a body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = status;
    response
}

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) and parses it as `T`.
///
/// # Errors
/// `413` over the limit (by `Content-Length` before reading, or while
/// reading); `400 MALFORMED_REQUEST` for anything that is not a `T`: bad
/// JSON, wrong types, missing fields, fractions where integers belong.
pub async fn read_json<B, T>(req: Request<B>) -> Result<T, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
    T: DeserializeOwned,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let collected = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed("the request body could not be read".into())
            }
        })?;
    let mut bytes = collected.to_bytes().to_vec();
    parse_json(&mut bytes)
}

/// Parses JSON in place (simd-json needs a mutable buffer).
///
/// # Errors
/// `400 MALFORMED_REQUEST` naming what is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &mut [u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::Malformed("a JSON body is required".into()));
    }
    // Every body of this API is an object; serde alone would also read a
    // struct from an array of its fields (`[100]` as `{"amount":100}`).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Malformed("the body must be a JSON object".into()));
    }
    // serde_json: for bodies this small it is faster than simd-json, whose
    // per-call buffer setup dominates (see benches/http.rs).
    serde_json::from_slice(bytes).map_err(|e| ApiError::Malformed(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Charge {
        amount: i64,
    }

    #[test]
    fn fractions_and_wrong_types_are_malformed() {
        for body in [r#"{"amount":1.5}"#, r#"{"amount":"1"}"#, r#"{}"#, "[5]", "nope", ""] {
            let mut bytes = body.as_bytes().to_vec();
            let err = parse_json::<Charge>(&mut bytes).unwrap_err();
            assert!(matches!(err, ApiError::Malformed(_)), "{body}: {err:?}");
        }
        let mut ok = br#"{"amount":5}"#.to_vec();
        assert_eq!(parse_json::<Charge>(&mut ok).unwrap().amount, 5);
    }
}
