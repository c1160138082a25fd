//! Admin endpoints on the OTLP/HTTP receiver (behind the same bearer-token guard):
//! `POST /admin/invite` and `POST /admin/remove` with `{"name":"ORG/NS/APP"}`, and
//! `GET /admin/members`. They change a moderator's group while it runs.

use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::net::answer::Answer;
use crate::net::http::Format;
use slim_roles::{Admin, AdminError, SlimName};

/// The request body of invite and remove.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    name: String,
}

/// The admin routes, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(admin: Admin) -> Router<S> {
    Router::new()
        .route("/admin/invite", post(invite))
        .route("/admin/remove", post(remove))
        .route("/admin/members", get(members))
        .layer(Extension(admin))
}

fn bad_request(message: &str) -> Response {
    Answer::bad_request(message).http(Format::Json)
}

/// The name in the body, or why there is none.
fn member_name(body: Result<Json<Member>, JsonRejection>) -> Result<SlimName, String> {
    let Json(member) =
        body.map_err(|e| format!("expected a JSON body {{\"name\":\"ORG/NS/APP\"}}: {e}"))?;
    member.name.parse::<SlimName>().map_err(|e| e.to_string())
}

fn refused(err: AdminError) -> Response {
    Answer::conflict(err.to_string()).http(Format::Json)
}

async fn invite(
    Extension(admin): Extension<Admin>,
    body: Result<Json<Member>, JsonRejection>,
) -> Response {
    change(&admin, body, "added", Admin::invite)
}

async fn remove(
    Extension(admin): Extension<Admin>,
    body: Result<Json<Member>, JsonRejection>,
) -> Response {
    change(&admin, body, "removed", Admin::remove)
}

/// Applies `op` to the name in the body; answers whether it changed anything (as `field`)
/// and the invitees after it.
fn change(
    admin: &Admin,
    body: Result<Json<Member>, JsonRejection>,
    field: &str,
    op: fn(&Admin, SlimName) -> Result<bool, AdminError>,
) -> Response {
    let name = match member_name(body) {
        Ok(name) => name,
        Err(why) => return bad_request(&why),
    };
    match op(admin, name.clone()) {
        Ok(changed) => Json(json!({
            "name": name.to_string(),
            field: changed,
            "invitees": admin.invitees(),
        }))
        .into_response(),
        Err(err) => refused(err),
    }
}

async fn members(Extension(admin): Extension<Admin>) -> Response {
    Json(json!({ "invitees": admin.invitees() })).into_response()
}
