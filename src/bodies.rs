//! Every JSON request body type, by its OpenAPI schema name, decoded the way its route decodes
//! it. The fuzz targets (`tests/fuzz`) and the corpus replay in the test suite go through here;
//! a test checks that the list covers every request body of `openapi/openapi.json`.

use crate::error::AppError;
use crate::extract::parse_json;

macro_rules! json_bodies {
    ($($name:literal => $ty:ty),* $(,)?) => {
        /// The schema names, in a fixed order (the fuzz target picks one by index).
        pub const NAMES: &[&str] = &[$($name,)* MEDIA_CALLBACK];

        /// Decodes `bytes` as the body called `name`; `None` for a name not in [`NAMES`].
        pub fn decode(name: &str, bytes: &[u8]) -> Option<Result<(), AppError>> {
            match name {
                $($name => Some(parse_json::<$ty>(bytes).map(drop)),)*
                MEDIA_CALLBACK => Some(crate::media::service::decode_callback(bytes).map(drop)),
                _ => None,
            }
        }
    };
}

/// The media worker's callback, an untyped `object` in the document (it is signed, not typed).
pub const MEDIA_CALLBACK: &str = "media_callback";

json_bodies! {
    "LoginRequest" => crate::identity::handlers::LoginRequest,
    "RefreshRequest" => crate::identity::handlers::RefreshRequest,
    "RegisterRequest" => crate::identity::handlers::RegisterRequest,
    "CreateCommunity" => crate::communities::handlers::CreateCommunity,
    "UpdateCommunity" => crate::communities::handlers::UpdateCommunity,
    "BanRequest" => Option<crate::communities::handlers::BanRequest>,
    "CreateInvite" => crate::communities::handlers::CreateInvite,
    "CreateGroup" => crate::communities::handlers::CreateGroup,
    "UpdateGroup" => crate::communities::handlers::UpdateGroup,
    "CreateRoom" => crate::communities::handlers::CreateRoom,
    "UpdateRoom" => crate::communities::handlers::UpdateRoom,
    "OpenDm" => crate::communities::handlers::OpenDm,
    "RoleRequest" => crate::permissions::handlers::RoleRequest,
    "RolePatch" => crate::permissions::handlers::RolePatch,
    "OverrideRequest" => crate::permissions::handlers::OverrideRequest,
    "SimulateRequest" => crate::permissions::handlers::SimulateRequest,
    "SendRequest" => crate::messages::handlers::SendRequest,
    "EditRequest" => crate::messages::handlers::EditRequest,
    "ReadRequest" => crate::messages::handlers::ReadRequest,
    "CreatePoll" => crate::polls::poll_model::CreatePoll,
    "VoteRequest" => crate::polls::poll_handlers::VoteRequest,
    "CreateSurvey" => crate::polls::survey_model::CreateSurvey,
    "SubmitSurveyResponse" => crate::polls::survey_handlers::SubmitSurveyResponse,
    "CreateEvent" => crate::calendar::model::CreateEvent,
    "UpdateEvent" => crate::calendar::model::UpdateEvent,
    "UpdateOccurrence" => crate::calendar::model::UpdateOccurrence,
    "RsvpRequest" => crate::calendar::model::RsvpRequest,
    "SplitRequest" => crate::calendar::model::SplitRequest,
    "CreateUpload" => crate::media::model::CreateUpload,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every `requestBody` of the document is here, so the fuzz target covers each of them.
    #[test]
    fn names_cover_every_request_body() {
        let spec = serde_json::to_value(crate::openapi::spec()).unwrap();
        let mut in_spec = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let Some(content) = operation["requestBody"]["content"].as_object() else {
                    continue;
                };
                for media in content.values() {
                    let text = media["schema"].to_string();
                    let name = text
                        .split("#/components/schemas/")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .map(str::to_owned);
                    let operation_id = operation["operationId"].as_str().unwrap_or_default();
                    in_spec.insert(name.unwrap_or_else(|| {
                        assert_eq!(
                            operation_id, MEDIA_CALLBACK,
                            "{method} {path}: untyped body"
                        );
                        MEDIA_CALLBACK.to_owned()
                    }));
                }
            }
        }
        let listed: BTreeSet<String> = NAMES.iter().map(ToString::to_string).collect();
        assert_eq!(listed, in_spec);
    }

    #[test]
    fn decode_refuses_unknown_names_and_decodes_known_ones() {
        assert!(decode("Nope", b"{}").is_none());
        assert!(matches!(
            decode("ReadRequest", br#"{"seq": 3}"#),
            Some(Ok(()))
        ));
        let refused = decode("ReadRequest", br#"{"seq": "x"}"#)
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.problem().status, 422);
    }
}
