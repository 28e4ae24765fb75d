//! HTTP handlers of surveys.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::survey_service::{
    self, CreateSurvey, SurveyAnswerInput, SurveyResponseView, SurveyResults, SurveyView,
};
use crate::error::{AppError, Problem};
use crate::extract::{Json, Path};
use crate::identity::AuthUser;
use crate::permissions::{ScopeKind, perm};
use crate::state::AppState;

/// Post a survey into a room; a message carrying it joins the timeline.
#[utoipa::path(post, path = "/v1/rooms/{room_id}/surveys", tag = "polls", operation_id = "create_survey",
    security(("bearer" = [])), params(("room_id" = Uuid, Path)), request_body = CreateSurvey,
    responses((status = 201, body = SurveyView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "client_msg_id already used for a message that carries no survey", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(room): Path<Uuid>,
    Json(body): Json<CreateSurvey>,
) -> Result<(StatusCode, Json<SurveyView>), AppError> {
    let proof = state
        .permissions
        .require_kind::<perm::CreatePolls>(auth.user_id, room, ScopeKind::Room)
        .await?;
    let survey = survey_service::create(&state, &proof, body).await?;
    Ok((StatusCode::CREATED, Json(survey)))
}

/// A survey's questions, and whether the caller has responded and may see the results.
#[utoipa::path(get, path = "/v1/surveys/{survey_id}", tag = "polls", operation_id = "get_survey",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)),
    responses((status = 200, body = SurveyView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SurveyView>, AppError> {
    survey_service::survey_for(&state, auth.user_id, id)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubmitSurveyResponse {
    /// At most one answer per question; every required question answered.
    pub answers: Vec<SurveyAnswerInput>,
}

/// Respond, or replace one's response while the survey is open (201 first, 200 after).
#[utoipa::path(post, path = "/v1/surveys/{survey_id}/responses", tag = "polls", operation_id = "respond_to_survey",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)), request_body = SubmitSurveyResponse,
    responses((status = 201, body = SurveyResponseView, description = "the first response"),
        (status = 200, body = SurveyResponseView, description = "an earlier response replaced"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn respond(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<SubmitSurveyResponse>,
) -> Result<(StatusCode, Json<SurveyResponseView>), AppError> {
    let (response, created) =
        survey_service::respond(&state, auth.user_id, id, &body.answers).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(response)))
}

/// The caller's own response (404 when they have not responded).
#[utoipa::path(get, path = "/v1/surveys/{survey_id}/responses/me", tag = "polls", operation_id = "get_my_survey_response",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)),
    responses((status = 200, body = SurveyResponseView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn my_response(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SurveyResponseView>, AppError> {
    survey_service::my_response(&state, auth.user_id, id)
        .await
        .map(Json)
}

/// Aggregated results, when the survey's `results` setting lets the caller see them.
#[utoipa::path(get, path = "/v1/surveys/{survey_id}/results", tag = "polls", operation_id = "get_survey_results",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)),
    responses((status = 200, body = SurveyResults), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn results(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SurveyResults>, AppError> {
    survey_service::results(&state, auth.user_id, id)
        .await
        .map(Json)
}

/// Every response as CSV, one row each (the creator, or manage_messages).
#[utoipa::path(get, path = "/v1/surveys/{survey_id}/results.csv", tag = "polls", operation_id = "export_survey_csv",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)),
    responses((status = 200, body = String, content_type = "text/csv",
            description = "response_id,user_id,username,submitted_at,updated_at, then one column per question"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn results_csv(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, AppError> {
    let csv = survey_service::export_csv(&state, auth.user_id, id).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"survey-{id}.csv\""),
        ),
    ];
    Ok((headers, csv))
}

/// Close the survey now (its creator, or manage_messages); closing a closed survey changes nothing.
#[utoipa::path(post, path = "/v1/surveys/{survey_id}/close", tag = "polls", operation_id = "close_survey",
    security(("bearer" = [])), params(("survey_id" = Uuid, Path)),
    responses((status = 200, body = SurveyView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn close(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SurveyView>, AppError> {
    survey_service::close(&state, auth.user_id, id)
        .await
        .map(Json)
}
