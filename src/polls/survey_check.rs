//! Validation of survey definitions and of answers against them.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::survey_model::{CreateSurvey, QuestionKind, SurveyAnswerInput, SurveyQuestionInput};
use super::survey_repo::{AnswerRow, NewQuestion, QuestionRow};
use super::survey_service::Form;
use crate::error::{AppError, FieldError};

/// Trimmed text of 1..=max characters; None when out of bounds or holding NUL (which
/// Postgres text cannot store).
fn bounded(raw: &str, max: usize) -> Option<String> {
    let text = raw.trim();
    let len = text.chars().count();
    (len >= 1 && len <= max && !text.contains('\0')).then(|| text.to_owned())
}

type Fail<'a> = dyn FnMut(&str, &str) + 'a;

fn choice_options(q: &SurveyQuestionInput, fail: &mut Fail) -> Vec<String> {
    let given = q.options.as_deref().unwrap_or_default();
    if !q.kind.is_choice() {
        if !given.is_empty() {
            fail(
                "options",
                "only single and multiple choice questions take options",
            );
        }
        return Vec::new();
    }
    if !(2..=20).contains(&given.len()) {
        fail("options", "must hold 2-20 options");
    }
    let options: Vec<Option<String>> = given.iter().map(|o| bounded(o, 100)).collect();
    if options.iter().any(Option::is_none) {
        fail("options", "each must be 1-100 characters");
    }
    let options: Vec<String> = options.into_iter().flatten().collect();
    if options.iter().collect::<HashSet<_>>().len() != options.len() {
        fail("options", "must be distinct");
    }
    options
}

fn rating_scale(q: &SurveyQuestionInput, fail: &mut Fail) -> Option<i16> {
    match (q.kind, q.scale) {
        (QuestionKind::Rating, None) => Some(5),
        (QuestionKind::Rating, Some(scale @ (5 | 10))) => Some(scale as i16),
        (QuestionKind::Rating, Some(_)) => {
            fail("scale", "must be 5 or 10");
            None
        }
        (_, Some(_)) => {
            fail("scale", "only rating questions take a scale");
            None
        }
        (_, None) => None,
    }
}

fn max_choices(q: &SurveyQuestionInput, options: usize, fail: &mut Fail) -> Option<i32> {
    let max = q.max_choices?;
    if q.kind != QuestionKind::Multiple {
        fail(
            "max_choices",
            "only multiple choice questions take max_choices",
        );
    } else if max == 0 || max as usize > options {
        fail("max_choices", "must be between 1 and the number of options");
    }
    Some(max as i32)
}

fn question(i: usize, q: &SurveyQuestionInput, errors: &mut Vec<FieldError>) -> NewQuestion {
    let mut fail = |name: &str, message: &str| {
        errors.push(FieldError::new(format!("questions[{i}].{name}"), message));
    };
    let prompt = bounded(&q.prompt, 500).unwrap_or_else(|| {
        fail("prompt", "must be 1-500 characters");
        String::new()
    });
    let options = choice_options(q, &mut fail);
    NewQuestion {
        id: Uuid::now_v7(),
        kind: q.kind.as_str(),
        prompt,
        required: q.required,
        scale: rating_scale(q, &mut fail),
        max_choices: max_choices(q, options.len(), &mut fail),
        options,
    }
}

/// The survey's title, description and questions, or every rule the input breaks.
pub(super) fn validate(
    input: &CreateSurvey,
) -> Result<(String, String, Vec<NewQuestion>), AppError> {
    let mut errors = Vec::new();
    let title = bounded(&input.title, 200).unwrap_or_else(|| {
        errors.push(FieldError::new("title", "must be 1-200 characters"));
        String::new()
    });
    let description = input.description.as_deref().unwrap_or_default().trim();
    if description.chars().count() > 4000 || description.contains('\0') {
        errors.push(FieldError::new(
            "description",
            "must be at most 4000 characters",
        ));
    }
    if !(1..=50).contains(&input.questions.len()) {
        errors.push(FieldError::new("questions", "must hold 1-50 questions"));
    }
    let questions = (input.questions.iter().enumerate())
        .map(|(i, q)| question(i, q, &mut errors))
        .collect();
    if let Some(at) = input.closes_at {
        let now = Utc::now();
        if at <= now || at > now + Duration::days(366) {
            errors.push(FieldError::new(
                "closes_at",
                "must be in the future, within 366 days",
            ));
        }
    }
    if errors.is_empty() {
        Ok((title, description.to_owned(), questions))
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Where an answer breaks a rule: its field and why.
type Invalid = (&'static str, String);

fn check_choices(
    form: &Form,
    q: &QuestionRow,
    chosen: Option<&[Uuid]>,
) -> Result<Vec<Uuid>, Invalid> {
    let bad = |message: &str| ("option_ids", message.to_owned());
    let chosen = chosen.unwrap_or_default();
    let unique: HashSet<Uuid> = chosen.iter().copied().collect();
    let own: Vec<Uuid> = form.options_of(q.id).map(|o| o.id).collect();
    if chosen.is_empty() {
        return Err(bad("choose at least one option"));
    }
    if unique.len() != chosen.len() {
        return Err(bad("must not repeat an option"));
    }
    if !unique.iter().all(|id| own.contains(id)) {
        return Err(bad("not an option of this question"));
    }
    if QuestionKind::parse(&q.kind) == QuestionKind::Single && chosen.len() != 1 {
        return Err(bad("this question takes exactly one choice"));
    }
    if let Some(max) = q.max_choices
        && chosen.len() > max as usize
    {
        return Err(bad(&format!("at most {max} choices")));
    }
    // Stored in option order, whatever order they came in.
    Ok(own.into_iter().filter(|id| unique.contains(id)).collect())
}

fn check_answer(form: &Form, q: &QuestionRow, a: &SurveyAnswerInput) -> Result<AnswerRow, Invalid> {
    let kind = QuestionKind::parse(&q.kind);
    let expected = kind.answer_field();
    let given = [
        ("option_ids", a.option_ids.is_some()),
        ("text", a.text.is_some()),
        ("rating", a.rating.is_some()),
    ];
    if let Some((extra, _)) = given.iter().find(|(name, set)| *set && *name != expected) {
        let kind = kind.as_str();
        return Err((
            extra,
            format!("a {kind} question is answered with {expected} only"),
        ));
    }
    let mut row = AnswerRow {
        question_id: q.id,
        option_ids: None,
        text: None,
        rating: None,
    };
    match kind {
        QuestionKind::Single | QuestionKind::Multiple => {
            row.option_ids = Some(check_choices(form, q, a.option_ids.as_deref())?);
        }
        QuestionKind::Text => {
            let text = a.text.as_deref().unwrap_or_default();
            row.text =
                Some(bounded(text, 4000).ok_or(("text", "must be 1-4000 characters".into()))?);
        }
        QuestionKind::Rating => {
            let scale = i32::from(q.scale.unwrap_or(5));
            let rating = a.rating.filter(|r| (1..=scale).contains(r));
            row.rating = Some(rating.ok_or(("rating", format!("must be 1-{scale}")))? as i16);
        }
    }
    Ok(row)
}

/// The answers in question order, or every rule they break (including unanswered required
/// questions).
pub(super) fn check_answers(
    form: &Form,
    input: &[SurveyAnswerInput],
) -> Result<Vec<AnswerRow>, AppError> {
    let mut errors = Vec::new();
    if input.is_empty() {
        errors.push(FieldError::new("answers", "answer at least one question"));
    }
    let mut seen = HashSet::new();
    let mut valid = HashMap::new();
    for (i, a) in input.iter().enumerate() {
        let at = |name: &str| format!("answers[{i}].{name}");
        let Some(q) = form.questions.iter().find(|q| q.id == a.question_id) else {
            errors.push(FieldError::new(
                at("question_id"),
                "not a question of this survey",
            ));
            continue;
        };
        if !seen.insert(q.id) {
            errors.push(FieldError::new(
                at("question_id"),
                "answers the same question twice",
            ));
            continue;
        }
        match check_answer(form, q, a) {
            Ok(row) => {
                valid.insert(q.id, row);
            }
            Err((name, message)) => errors.push(FieldError::new(at(name), message)),
        }
    }
    for (n, q) in form.questions.iter().enumerate() {
        if q.required && !seen.contains(&q.id) {
            let message = format!("question {} ({}) is required", n + 1, q.id);
            errors.push(FieldError::new("answers", message));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(form
        .questions
        .iter()
        .filter_map(|q| valid.remove(&q.id))
        .collect())
}
