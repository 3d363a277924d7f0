//! The route table: method + path pattern → route. No logic here.

use std::sync::LazyLock;

use http::Method;

/// Every route of the API (see API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    CreateUser,
    GetBalance,
    ChargeBalance,
    ListBalanceHistory,
    ListUserReservations,
    IssueQueueToken,
    GetQueueToken,
    LeaveQueue,
    StreamQueueEvents,
    CreateConcert,
    ListConcerts,
    GetConcert,
    ListAvailableSchedules,
    GetSeatMap,
    CreateReservation,
    GetReservation,
    CancelReservation,
    CreatePayment,
    GetPayment,
}

/// `(method, pattern, route)` of every route; patterns name their one
/// parameter `{id}` or `{token}`.
pub const ROUTES: &[(Method, &str, Route)] = &[
    (Method::GET, "/healthz", Route::Healthz),
    (Method::GET, "/readyz", Route::Readyz),
    (Method::GET, "/metrics", Route::Metrics),
    (Method::GET, "/openapi.json", Route::OpenApi),
    (Method::POST, "/v1/users", Route::CreateUser),
    (Method::GET, "/v1/users/{id}/balance", Route::GetBalance),
    (Method::POST, "/v1/users/{id}/balance/charge", Route::ChargeBalance),
    (Method::GET, "/v1/users/{id}/balance/history", Route::ListBalanceHistory),
    (Method::GET, "/v1/users/{id}/reservations", Route::ListUserReservations),
    (Method::POST, "/v1/queue/tokens", Route::IssueQueueToken),
    (Method::GET, "/v1/queue/tokens/{token}", Route::GetQueueToken),
    (Method::DELETE, "/v1/queue/tokens/{token}", Route::LeaveQueue),
    (Method::GET, "/v1/queue/tokens/{token}/events", Route::StreamQueueEvents),
    (Method::POST, "/v1/admin/concerts", Route::CreateConcert),
    (Method::GET, "/v1/concerts", Route::ListConcerts),
    (Method::GET, "/v1/concerts/{id}", Route::GetConcert),
    (
        Method::GET,
        "/v1/concerts/{id}/schedules",
        Route::ListAvailableSchedules,
    ),
    (Method::GET, "/v1/schedules/{id}/seats", Route::GetSeatMap),
    (Method::POST, "/v1/reservations", Route::CreateReservation),
    (Method::GET, "/v1/reservations/{id}", Route::GetReservation),
    (Method::DELETE, "/v1/reservations/{id}", Route::CancelReservation),
    (Method::POST, "/v1/payments", Route::CreatePayment),
    (Method::GET, "/v1/payments/{id}", Route::GetPayment),
];

/// The routes of one path pattern.
struct Entry {
    pattern: &'static str,
    methods: Vec<(Method, Route)>,
}

static ROUTER: LazyLock<matchit::Router<Entry>> = LazyLock::new(|| {
    let mut entries: Vec<Entry> = Vec::new();
    for (method, pattern, route) in ROUTES {
        match entries.iter_mut().find(|e| e.pattern == *pattern) {
            Some(entry) => entry.methods.push((method.clone(), *route)),
            None => entries.push(Entry {
                pattern,
                methods: vec![(method.clone(), *route)],
            }),
        }
    }
    let mut router = matchit::Router::new();
    for entry in entries {
        router
            .insert(entry.pattern, entry)
            .expect("route patterns are distinct");
    }
    router
});

/// What the table says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    /// A route, its pattern (the metrics label) and its path parameter.
    Found(Route, &'static str, String),
    /// The path exists, the method does not.
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Looks a request up.
pub fn find(method: &Method, path: &str) -> Match {
    let Ok(found) = ROUTER.at(path) else {
        return Match::NotFound;
    };
    let entry = found.value;
    let param = found
        .params
        .iter()
        .next()
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    match entry.methods.iter().find(|(m, _)| m == method) {
        Some((_, route)) => Match::Found(*route, entry.pattern, param),
        None => Match::MethodNotAllowed(entry.pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_params_and_wrong_methods() {
        assert_eq!(
            find(&Method::GET, "/v1/users/7/balance"),
            Match::Found(Route::GetBalance, "/v1/users/{id}/balance", "7".into())
        );
        assert_eq!(find(&Method::PUT, "/v1/users"), Match::MethodNotAllowed("/v1/users"));
        assert_eq!(find(&Method::GET, "/v1/nope"), Match::NotFound);
        assert_eq!(
            find(&Method::DELETE, "/v1/queue/tokens/abc"),
            Match::Found(Route::LeaveQueue, "/v1/queue/tokens/{token}", "abc".into())
        );
    }
}
