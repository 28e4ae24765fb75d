//! CSV export of survey responses: RFC 4180 quoting, spreadsheet formulas defused.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::survey_repo::{ExportCell, ExportResponse, QuestionRow};

/// One CSV field: formula-looking text defused for spreadsheets, then RFC 4180 quoting.
fn csv_field(raw: &str) -> Cow<'_, str> {
    let mut field = Cow::Borrowed(raw);
    if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        field = Cow::Owned(format!("'{raw}"));
    }
    if field.contains([',', '"', '\r', '\n']) {
        field = Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")));
    }
    field
}

fn csv_line<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    let fields: Vec<Cow<str>> = fields.into_iter().map(csv_field).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

pub(super) fn render_csv(
    questions: &[QuestionRow],
    responses: &[ExportResponse],
    cells: Vec<ExportCell>,
) -> String {
    let mut cells: HashMap<(Uuid, Uuid), String> = (cells.into_iter())
        .map(|c| ((c.response_id, c.question_id), c.value))
        .collect();
    let mut out = String::new();
    let fixed = [
        "response_id",
        "user_id",
        "username",
        "submitted_at",
        "updated_at",
    ];
    csv_line(
        &mut out,
        fixed
            .into_iter()
            .chain(questions.iter().map(|q| q.prompt.as_str())),
    );
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    for r in responses {
        let mut row = vec![
            r.id.to_string(),
            r.user_id.to_string(),
            r.username.clone(),
            stamp(r.submitted_at),
            stamp(r.updated_at),
        ];
        row.extend(
            questions
                .iter()
                .map(|q| cells.remove(&(r.id, q.id)).unwrap_or_default()),
        );
        csv_line(&mut out, row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn plain_fields_pass_unchanged() {
        assert_eq!(csv_field("hello world"), "hello world");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn separators_quotes_and_line_breaks_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
    }

    #[test]
    fn formula_prefixes_are_defused() {
        assert_eq!(csv_field("=SUM(A1:A2)"), "'=SUM(A1:A2)");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@cmd"), "'@cmd");
        assert_eq!(csv_field("=A1,B1"), "\"'=A1,B1\"");
        assert_eq!(csv_field("a=b"), "a=b");
    }
}
