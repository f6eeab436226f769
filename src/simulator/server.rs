//! The simulator's HTTP side: Huawei's two signed APIs behind a gateway-like signature check,
//! the keyless-credential endpoints (IAM federation, Pod Identity, ECS metadata; see
//! [`super::keyless`]), and the admin API under `/_simulator/`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::fault::{Api, Fault, FaultKind, default_error, long_request_id, long_text};
use super::keyless;
use super::pools::SimulatedPool;
use super::setup::SimulatedCounts;
use super::state::{Lookup, RequestFilter, RequestKey, State as SimState};
use crate::modelarts::Clock;
use crate::modelarts::signer::{self, Authorization, MAX_CLOCK_SKEW, SdkDate};

/// Largest request body the simulator reads (the signed APIs take none; the IAM federation
/// calls take a small JSON document).
const MAX_REQUEST_BODY: usize = 1 << 20;

/// Formats a time the way Go's `time.Time.String()` does for UTC, which is how ModelArts writes
/// `operationTime`: `2025-03-27 11:48:55.446172146 +0000 UTC` (no fraction when it is zero).
fn go_time_string(time: SystemTime) -> String {
    let at = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.strftime("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string()
}

/// What every handler shares.
pub(crate) struct App {
    pub state: Arc<SimState>,
    pub clock: Clock,
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let admin = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats", get(admin_stats))
        .route("/requests", get(admin_requests))
        .route("/counts", get(admin_counts))
        .route(
            "/counts/{project}/{workspace}",
            put(admin_set_counts).delete(admin_remove_counts),
        )
        .route(
            "/pools/{project}/{workspace}",
            put(admin_set_pools).delete(admin_remove_pools),
        )
        .route(
            "/faults",
            get(admin_faults)
                .post(admin_inject)
                .delete(admin_clear_faults),
        )
        .route("/faults/{id}", delete(admin_remove_fault))
        .route("/reset", post(admin_reset));
    Router::new()
        .nest("/_simulator", admin)
        .fallback(gateway)
        .with_state(app)
}

/// Decrements the in-flight gauge when a request ends, however it ends.
struct InFlight(Arc<SimState>);

impl InFlight {
    fn enter(state: &Arc<SimState>) -> Self {
        state.enter();
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

pub(super) fn json_body(status: StatusCode, body: &Value, request_id: &str) -> Response {
    with_json_headers((status, body.to_string()).into_response(), request_id)
}

/// Marks `response` as JSON and gives it the gateway's `X-Request-Id`, as every answer has.
fn with_json_headers(mut response: Response, request_id: &str) -> Response {
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_request_id(response, request_id)
}

/// Gives `response` the gateway's `X-Request-Id`.
pub(super) fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn error_body(status: u16, code: &str, msg: &str, request_id: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_body(
        status,
        &json!({"error_code": code, "error_msg": msg, "request_id": request_id}),
        request_id,
    )
}

/// What the request asked for, as far as counters and faults care.
struct Target {
    api: Api,
    project: Option<String>,
    workspace: Option<String>,
}

fn target(method: &Method, path: &str, query: &[(String, String)]) -> Target {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = trimmed.split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let keyless = |api| Target {
        api,
        project: None,
        workspace: None,
    };
    match segments.as_slice() {
        ["", "v2", project, "statistics", "pools"] if get => Target {
            api: Api::Statistics,
            project: Some((*project).to_owned()),
            workspace: Some(
                query
                    .iter()
                    .find(|(k, _)| k == "workspaceId")
                    .map_or_else(|| "0".to_owned(), |(_, v)| v.clone()),
            ),
        },
        ["", "v2", project, "pools"] if get => Target {
            api: Api::ListPools,
            project: Some((*project).to_owned()),
            workspace: Some(
                query
                    .iter()
                    .find(|(k, _)| k == "workspaceId")
                    .map_or_else(|| "0".to_owned(), |(_, v)| v.clone()),
            ),
        },
        ["", "v3", "projects"] if get => Target {
            api: Api::Iam,
            project: query
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.clone()),
            workspace: None,
        },
        ["", "v3.0", "OS-AUTH", "id-token", "tokens"] if post => keyless(Api::IdToken),
        ["", "v3.0", "OS-CREDENTIAL", "securitytokens"] if post => keyless(Api::SecurityToken),
        ["", "v1", "pod-identity", "credentials"] if post => keyless(Api::PodIdentity),
        ["", "meta-data", "latest", "api", "token"] if method == Method::PUT => {
            keyless(Api::MetadataToken)
        }
        ["", "openstack", "latest", "securitykey"] if get => keyless(Api::Metadata),
        _ => keyless(Api::Other),
    }
}

/// Who a signed request came from, as far as answering it cares.
struct Authenticated {
    access_key_id: String,
    /// Set for credentials the simulator issued: they may read only some projects.
    restriction: Option<Restriction>,
}

/// The projects issued temporary credentials may read, and whose they are.
struct Restriction {
    principal: String,
    projects: Vec<String>,
}

/// The secret side of an access key the gateway knows: configured or issued.
struct KnownKey {
    secret_access_key: String,
    security_token: Option<String>,
    /// For issued credentials: their restriction and expiry.
    issued: Option<(Restriction, SystemTime)>,
}

fn known_key(app: &App, access_key_id: &str) -> Option<KnownKey> {
    if let Some(key) = app.state.key(access_key_id) {
        return Some(KnownKey {
            secret_access_key: key.secret_access_key,
            security_token: key.security_token,
            issued: None,
        });
    }
    let issued = app.state.issued(|i| i.credential(access_key_id))?;
    Some(KnownKey {
        secret_access_key: issued.secret_access_key,
        security_token: Some(issued.security_token),
        issued: Some((
            Restriction {
                principal: issued.principal,
                projects: issued.projects,
            },
            issued.expires_at,
        )),
    })
}

/// Checks the SDK-HMAC-SHA256 signature as the gateway does, for configured keys and for
/// temporary credentials the simulator issued (until they expire). `Ok` holds the access key id
/// and any project restriction; `Err` the access key id named (if any) and the gateway's message.
fn authenticate(
    app: &App,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Authenticated, (Option<String>, String)> {
    const PREFIX: &str = "Incorrect IAM authentication information";
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Authorization::parse)
    else {
        return Err((
            None,
            format!("{PREFIX}: the Authorization header is missing or is not SDK-HMAC-SHA256"),
        ));
    };
    let access = Some(auth.access.clone());
    let header_text = |name: &str| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    let Some(date) = header_text(signer::HEADER_SDK_DATE).and_then(|d| SdkDate::parse(d.trim()))
    else {
        return Err((
            access,
            format!("{PREFIX}: X-Sdk-Date is missing or not in the YYYYMMDDTHHMMSSZ format"),
        ));
    };
    // Read in place: cloning the whole setup per request costs what it holds (every pool).
    let setup_skew = app
        .state
        .read_setup(|s| s.max_clock_skew)
        .unwrap_or(MAX_CLOCK_SKEW);
    let now = SdkDate::from_system_time(app.clock.now());
    if date.distance(now) > setup_skew {
        return Err((
            access,
            format!(
                "{PREFIX}: X-Sdk-Date {date} is more than {} away from the server time {now}",
                humantime::format_duration(setup_skew)
            ),
        ));
    }
    let Some(key) = known_key(app, &auth.access) else {
        return Err((
            access,
            format!("{PREFIX}: Get secretKey failed,ak:******,err:ak not exist"),
        ));
    };
    let signed: Vec<String> = auth.signed_headers.clone();
    if !signed.iter().any(|h| h == "host") || !signed.iter().any(|h| h == "x-sdk-date") {
        return Err((
            access,
            format!("{PREFIX}: verify aksk signature fail, host and x-sdk-date must be signed"),
        ));
    }
    let sent_token = header_text(signer::HEADER_SECURITY_TOKEN);
    match (&key.security_token, &sent_token) {
        (Some(expected), Some(sent)) => {
            let equal = aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                sent.trim().as_bytes(),
            )
            .is_ok();
            if !equal || !signed.iter().any(|h| h == "x-security-token") {
                return Err((
                    access,
                    format!("{PREFIX}: the security token is invalid or not signed"),
                ));
            }
        }
        (Some(_), None) => {
            return Err((
                access,
                format!("{PREFIX}: temporary credentials need the X-Security-Token header"),
            ));
        }
        (None, Some(_)) => {
            return Err((
                access,
                format!("{PREFIX}: the security token is invalid for a permanent access key"),
            ));
        }
        (None, None) => {}
    }
    // After the token check, so that only the holder of the token learns of the expiry.
    if let Some((_, expires_at)) = &key.issued
        && *expires_at <= app.clock.now()
    {
        return Err((
            access,
            format!(
                "{PREFIX}: the security token has expired; the temporary credentials were valid \
                 until {}, get new ones",
                keyless::credential_time(*expires_at)
            ),
        ));
    }
    let pairs: Vec<(String, String)> = signed
        .iter()
        .map(|name| (name.clone(), header_text(name).unwrap_or_default()))
        .collect();
    let to_sign = signer::headers_to_sign(&pairs);
    let payload = if body.is_empty() {
        signer::EMPTY_PAYLOAD_HASH.to_owned()
    } else {
        match header_text(signer::HEADER_CONTENT_SHA256) {
            Some(v) if signed.iter().any(|h| h == "x-sdk-content-sha256") => v,
            _ => signer::payload_hash(body),
        }
    };
    let query = signer::canonical_query(&signer::parse_query(raw_query));
    let canonical = signer::canonical_request(
        method.as_str(),
        &signer::canonical_uri(path),
        &query,
        &to_sign,
        &payload,
    );
    let expected = signer::signature(
        &key.secret_access_key,
        &signer::string_to_sign(date, &canonical),
    );
    let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        auth.signature.as_bytes(),
    )
    .is_ok();
    if matches && to_sign.len() == signed.len() {
        Ok(Authenticated {
            access_key_id: auth.access,
            restriction: key.issued.map(|(restriction, _)| restriction),
        })
    } else {
        // Like the gateway: the canonical request it computed, `|` for newlines. It holds the
        // security token when one was signed, as the real gateway's message does.
        Err((
            access,
            format!(
                "{PREFIX}: verify aksk signature fail, SignedHeaders={}, CanonicalRequest: {}",
                auth.signed_headers.join(";"),
                canonical.replace('\n', "|")
            ),
        ))
    }
}

pub(super) async fn gateway(State(app): State<Arc<App>>, request: Request) -> Response {
    let _in_flight = InFlight::enter(&app.state);
    let (parts, body) = request.into_parts();
    let request_id = request_id();
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error_body(413, "APIGW.0201", "Request entity too large", &request_id);
        }
    };
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let query = signer::parse_query(&raw_query);
    let target = target(&parts.method, &path, &query);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let record = |access_key_id: Option<String>, status: u16| {
        app.state.record(RequestKey {
            api: target.api,
            project: target.project.clone(),
            workspace: target.workspace.clone(),
            access_key_id,
            status,
            user_agent: user_agent.clone(),
        });
    };
    if target.api == Api::Other {
        let ak = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Authorization::parse)
            .map(|a| a.access);
        record(ak, 404);
        return error_body(
            404,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment",
            &request_id,
        );
    }
    // The keyless endpoints are how a client without a key gets one: nothing to sign with.
    let authenticated = if target.api.is_signed() {
        match authenticate(
            &app,
            &parts.method,
            &path,
            &raw_query,
            &parts.headers,
            &body,
        ) {
            Ok(authenticated) => Some(authenticated),
            Err((ak, msg)) => {
                // Only the gist: the full message can hold the canonical request and its token.
                let gist = msg.split(", SignedHeaders=").next().unwrap_or_default();
                tracing::info!(api = target.api.as_str(), "refused a request: {gist}");
                record(ak, 401);
                return error_body(401, "APIGW.0301", &msg, &request_id);
            }
        }
    } else {
        None
    };
    let access_key_id = authenticated.as_ref().map(|a| a.access_key_id.clone());
    let restriction = authenticated.as_ref().and_then(|a| a.restriction.as_ref());
    let fault = app.state.take_fault(
        target.api,
        target.project.as_deref(),
        target.workspace.as_deref(),
        access_key_id.as_deref(),
    );
    let normal = || match target.api {
        Api::IdToken => keyless::id_token(&app, &parts.headers, &body, &request_id),
        Api::SecurityToken => keyless::security_token(&app, &parts.headers, &body, &request_id),
        Api::PodIdentity => keyless::pod_identity(&app, &parts.headers, &request_id),
        Api::MetadataToken => keyless::metadata_token(&app, &parts.headers, &request_id),
        Api::Metadata => keyless::metadata_security_key(&app, &parts.headers, &request_id),
        Api::Statistics | Api::ListPools | Api::Iam | Api::Other => {
            answer(&app, &target, &query, restriction, &request_id)
        }
    };
    let (status, response) = match fault.map(|f| f.kind) {
        None => normal(),
        Some(FaultKind::Latency { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            normal()
        }
        Some(FaultKind::Status {
            status,
            error_code,
            error_msg,
            retry_after,
        }) => {
            let (code, msg) = default_error(status);
            let mut response = error_body(
                status,
                error_code.as_deref().unwrap_or(code),
                error_msg.as_deref().unwrap_or(msg),
                &request_id,
            );
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            (status, response)
        }
        Some(FaultKind::Hang) => {
            record(access_key_id, 0);
            std::future::pending::<()>().await;
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
        Some(FaultKind::Truncated) => {
            let (status, response) = normal();
            let (parts, body) = response.into_parts();
            let full = axum::body::to_bytes(body, MAX_REQUEST_BODY)
                .await
                .unwrap_or_default();
            let half = full.slice(..full.len() / 2);
            // Send half, give it time to reach the client, then break the connection.
            let chunks = futures::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let broken = std::io::Error::other("body truncated by a simulator fault");
                        Some((Err(broken), None))
                    }
                }
            });
            let mut response = Response::from_parts(parts, Body::from_stream(chunks));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
            (status, response)
        }
        Some(FaultKind::Oversized { bytes }) => (200, oversized(bytes, &request_id)),
        Some(FaultKind::InvalidJson) => {
            let mut response = json_body(StatusCode::OK, &Value::Null, &request_id);
            *response.body_mut() = Body::from("<html><body>502 Bad Gateway</body></html>");
            (200, response)
        }
        Some(FaultKind::WrongShape) => (
            200,
            json_body(
                StatusCode::OK,
                &json!({"pools": [{"name": "pool-a", "status": "created"}], "total": 1}),
                &request_id,
            ),
        ),
        Some(FaultKind::Redirect { location }) => {
            let mut response = error_body(302, "APIGW.0302", "Found", &request_id);
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            (302, response)
        }
        Some(FaultKind::LongOperationTime { bytes }) => {
            let (status, response) = normal();
            (
                status,
                with_long_operation_time(response, bytes, &request_id).await,
            )
        }
        Some(FaultKind::LongError {
            status,
            code_bytes,
            msg_bytes,
        }) => {
            let (code, msg) = default_error(status);
            let length = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
            let response = error_body(
                status,
                &long_text(code, length(code_bytes)),
                &long_text(msg, length(msg_bytes)),
                &long_request_id(&request_id),
            );
            (status, response)
        }
    };
    record(access_key_id, status);
    response
}

/// The answer of a healthy service to a signed request.
fn answer(
    app: &App,
    target: &Target,
    query: &[(String, String)],
    restriction: Option<&Restriction>,
    request_id: &str,
) -> (u16, Response) {
    let project = target.project.as_deref().unwrap_or_default();
    let workspace = target.workspace.as_deref().unwrap_or("0");
    match target.api {
        Api::Statistics | Api::ListPools
            if restriction.is_some_and(|r| !r.projects.iter().any(|p| p == project)) =>
        {
            let principal = restriction.map_or("", |r| r.principal.as_str());
            // ModelArts' own refusal, not the gateway's: the credentials are valid.
            (
                403,
                error_body(
                    403,
                    "ModelArts.0204",
                    &format!(
                        "Policy doesn't allow modelarts:pool:list to be performed: {principal} is \
                         not allowed in project {project}."
                    ),
                    request_id,
                ),
            )
        }
        Api::ListPools => {
            let status = query
                .iter()
                .find(|(k, _)| k == "status")
                .map(|(_, v)| v.as_str());
            if let Some(status) = status.filter(|s| !["created", "failed", "creating"].contains(s))
            {
                let message = format!(
                    "Invalid status {status:?}: expected one of created, failed, creating."
                );
                return (
                    400,
                    error_body(400, "ModelArts.50004000", &message, request_id),
                );
            }
            match app.state.lookup_pools(project, workspace) {
                Lookup::Found(pools) => {
                    let body = super::pools::pool_list(&pools, workspace, status);
                    (200, json_body(StatusCode::OK, &body, request_id))
                }
                Lookup::NoProject => {
                    not_found(&format!("Project {project} not found."), request_id)
                }
                Lookup::NoWorkspace => not_found(
                    &format!("Workspace {workspace} not found in project {project}."),
                    request_id,
                ),
            }
        }
        Api::Statistics => match app.state.lookup(project, workspace) {
            Lookup::Found(counts) => {
                let operation_time = app
                    .state
                    .read_setup(|s| s.operation_time.clone())
                    .unwrap_or_else(|| go_time_string(app.clock.now()));
                let body = json!({
                    "statistics": {"status": counts},
                    "operationTime": operation_time,
                });
                (200, json_body(StatusCode::OK, &body, request_id))
            }
            Lookup::NoProject => not_found(&format!("Project {project} not found."), request_id),
            Lookup::NoWorkspace => not_found(
                &format!("Workspace {workspace} not found in project {project}."),
                request_id,
            ),
        },
        Api::Iam => {
            let projects: Vec<Value> = app
                .state
                .projects_named(target.project.as_deref())
                .into_iter()
                .map(|(id, name)| {
                    json!({
                        "id": id,
                        "name": name,
                        "domain_id": "simulateddomain0000000000000000",
                        "enabled": true,
                        "is_domain": false,
                        "parent_id": "simulateddomain0000000000000000",
                        "description": "",
                        "links": {"self": format!("/v3/projects/{id}")},
                    })
                })
                .collect();
            let body = json!({"projects": projects, "links": {"self": "/v3/projects"}});
            (200, json_body(StatusCode::OK, &body, request_id))
        }
        // The keyless endpoints are answered in `keyless`; `gateway` never sends them here.
        Api::IdToken
        | Api::SecurityToken
        | Api::PodIdentity
        | Api::MetadataToken
        | Api::Metadata
        | Api::Other => (
            404,
            error_body(
                404,
                "APIGW.0101",
                "The API does not exist or has not been published in the environment",
                request_id,
            ),
        ),
    }
}

/// ModelArts' 404 for a project or workspace it does not know.
fn not_found(message: &str, request_id: &str) -> (u16, Response) {
    (
        404,
        error_body(404, "ModelArts.50015001", message, request_id),
    )
}

/// `response` with its `operationTime`, if it has one, made `bytes` long, and a long request id.
async fn with_long_operation_time(response: Response, bytes: u64, request_id: &str) -> Response {
    let (parts, body) = response.into_parts();
    let full = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .unwrap_or_default();
    match serde_json::from_slice::<Value>(&full) {
        Ok(mut answer) if answer.get("operationTime").is_some() => {
            let start = answer["operationTime"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            answer["operationTime"] = Value::String(long_text(
                &start,
                usize::try_from(bytes).unwrap_or(usize::MAX),
            ));
            json_body(parts.status, &answer, &long_request_id(request_id))
        }
        _ => Response::from_parts(parts, Body::from(full)),
    }
}

/// A chunked 200 body of `bytes` bytes that starts like a statistics answer, produced lazily.
fn oversized(bytes: u64, request_id: &str) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let head = br#"{"statistics":{"status":{"created":1}},"padding":""#;
    let tail = br#""}"#;
    let padding = bytes.saturating_sub((head.len() + tail.len()) as u64);
    let stream = futures::stream::unfold((0_u64, 0_u8), move |(sent, stage)| async move {
        match stage {
            0 => Some((
                Ok::<Bytes, std::io::Error>(Bytes::from_static(head)),
                (0, 1),
            )),
            1 if sent < padding => {
                let n = (padding - sent).min(CHUNK);
                let chunk = Bytes::from(vec![b'a'; usize::try_from(n).unwrap_or(0)]);
                Some((Ok(chunk), (sent + n, 1)))
            }
            1 => Some((Ok(Bytes::from_static(tail)), (sent, 2))),
            _ => None,
        }
    });
    with_json_headers(Response::new(Body::from_stream(stream)), request_id)
}

async fn admin_stats(State(app): State<Arc<App>>) -> Response {
    Json(app.state.stats()).into_response()
}

async fn admin_requests(
    State(app): State<Arc<App>>,
    Query(filter): Query<RequestFilter>,
) -> Response {
    Json(json!({"count": app.state.count(&filter)})).into_response()
}

async fn admin_counts(State(app): State<Arc<App>>) -> Response {
    Json(json!({"projects": app.state.setup().projects})).into_response()
}

async fn admin_set_counts(
    State(app): State<Arc<App>>,
    Path((project, workspace)): Path<(String, String)>,
    Json(counts): Json<SimulatedCounts>,
) -> Response {
    app.state.set_counts(&project, &workspace, counts);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_remove_counts(
    State(app): State<Arc<App>>,
    Path((project, workspace)): Path<(String, String)>,
) -> Response {
    if app.state.remove_counts(&project, &workspace) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn admin_set_pools(
    State(app): State<Arc<App>>,
    Path((project, workspace)): Path<(String, String)>,
    Json(pools): Json<Vec<SimulatedPool>>,
) -> Response {
    if app.state.set_pools(&project, &workspace, pools) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let message =
            format!("workspace {workspace} of project {project} has no counts: PUT them first");
        (StatusCode::NOT_FOUND, message).into_response()
    }
}

async fn admin_remove_pools(
    State(app): State<Arc<App>>,
    Path((project, workspace)): Path<(String, String)>,
) -> Response {
    app.state.set_pools(&project, &workspace, Vec::new());
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_faults(State(app): State<Arc<App>>) -> Response {
    Json(json!({"faults": app.state.faults()})).into_response()
}

async fn admin_inject(State(app): State<Arc<App>>, Json(fault): Json<Fault>) -> Response {
    let id = app.state.inject(fault);
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn admin_clear_faults(State(app): State<Arc<App>>) -> Response {
    app.state.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_remove_fault(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    if app.state.remove_fault(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn admin_reset(State(app): State<Arc<App>>) -> Response {
    app.state.reset();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::go_time_string;

    #[test]
    fn go_time_string_matches_modelarts() {
        let t = UNIX_EPOCH + Duration::new(1_743_076_135, 446_172_146);
        assert_eq!(go_time_string(t), "2025-03-27 11:48:55.446172146 +0000 UTC");
        let whole = UNIX_EPOCH + Duration::from_secs(1_743_076_135);
        assert_eq!(go_time_string(whole), "2025-03-27 11:48:55 +0000 UTC");
        let tenth = UNIX_EPOCH + Duration::new(1_743_076_135, 100_000_000);
        assert_eq!(go_time_string(tenth), "2025-03-27 11:48:55.1 +0000 UTC");
    }
}
