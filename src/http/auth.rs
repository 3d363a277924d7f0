//! Credentials of a request: the user key, the admin token, the queue token.

use http::header::AUTHORIZATION;
use http::HeaderMap;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::queue::{GateError, QueueToken};
use crate::user;

/// The header that carries the queue token on gated endpoints.
const QUEUE_TOKEN: &str = "queue-token";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// The user whose API key the request carries.
///
/// # Errors
/// `401 UNAUTHENTICATED` when the key is missing or unknown.
pub async fn user(state: &AppState, headers: &HeaderMap) -> Result<i64, ApiError> {
    let key = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    user::authenticate(&state.redis, &state.auth, key)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

/// The user of the key when one is sent (`None` when none is).
///
/// # Errors
/// `401 UNAUTHENTICATED` when a key is sent but unknown.
pub async fn optional_user(state: &AppState, headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    if headers.contains_key(AUTHORIZATION) {
        user(state, headers).await.map(Some)
    } else {
        Ok(None)
    }
}

/// The user, who must be `owner` (paths like `/v1/users/{id}/…`).
///
/// # Errors
/// `401` without a valid key, `403 FORBIDDEN` for another user's resource.
pub async fn owner(state: &AppState, headers: &HeaderMap, owner: i64) -> Result<i64, ApiError> {
    let user = user(state, headers).await?;
    if user == owner {
        Ok(user)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Checks the admin token.
///
/// # Errors
/// `401 UNAUTHENTICATED` when it is missing or wrong, or no `ADMIN_TOKEN`
/// is configured.
pub fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = state
        .settings
        .http
        .admin_token
        .as_ref()
        .ok_or(ApiError::Unauthenticated)?;
    let sent = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    // Compare digests so the comparison takes the same time for any input.
    let same = Sha256::digest(sent.as_bytes()) == Sha256::digest(expected.expose_secret().as_bytes());
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated)
    }
}

/// The queue token of a gated request.
///
/// # Errors
/// `401 QUEUE_TOKEN_REQUIRED` when the header is missing;
/// `401 QUEUE_TOKEN_INVALID` when it cannot be a token.
pub fn queue_token(headers: &HeaderMap) -> Result<QueueToken, ApiError> {
    let raw = headers.get(QUEUE_TOKEN).ok_or(GateError::Required)?;
    let raw = raw.to_str().map_err(|_| GateError::Invalid)?;
    Ok(QueueToken::parse(raw).ok_or(GateError::Invalid)?)
}

/// The `Idempotency-Key` header, if any.
///
/// # Errors
/// `400 MALFORMED_REQUEST` for a key that is empty, over 255 bytes, or not
/// visible ASCII.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(String::new());
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Malformed(
            "Idempotency-Key must be 1-255 visible ASCII characters".into(),
        ));
    }
    Ok(key.to_owned())
}
