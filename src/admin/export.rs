//! `guildhall admin export-community`: one community as one JSON document, streamed.
//!
//! Read-only and consistent: everything is read in one `REPEATABLE READ READ ONLY` transaction,
//! each section through a server-side cursor fetched `PAGE` rows at a time, and every row is
//! rendered to JSON by Postgres (`row_to_json`) and copied to the output as is. Memory stays at
//! one page whatever the community's size. Like `pg_dump`, this reads the features' tables
//! directly (the only such exception to the feature boundaries, and it never writes).
//!
//! Shape (`format_version` 1; new fields may be added, none renamed or removed without a new
//! version):
//! ```text
//! { "format_version": 1, "exported_at": RFC 3339,
//!   "community": {id, name, description, visibility, created_by, member_count, max_depth, created_at, updated_at},
//!   "groups":    [{id, parent_id, name, depth, created_at}]                  (parents first)
//!   "rooms":     [{id, group_id, name, topic, private, last_seq, created_at, private_members: [user_id] | null}]
//!   "roles":     [{id, name, permissions: [..], builtin: owner|admin|moderator|member|null, created_at}]
//!   "members":   [{user_id, username, display_name, joined_at, grants: [{role_id, role, scope_kind, scope_id, granted_by}]}]
//!   "overrides": [{id, scope_kind, scope_id, subject_kind: role|user, subject_id, allow, deny, updated_by, updated_at}]
//!   "bans":      [{user_id, banned_by, reason, created_at}]
//!   "messages":  [{id, room_id, seq, sender_id, content (null once deleted), reply_to, attachments, mentions,
//!                  poll_id, survey_id, created_at, edited_at, deleted_at, reactions: [{user_id, emoji, created_at}]}]
//!                (by room, then seq)
//!   "attachments": [{id, room_id, uploader_id, filename, declared_type, declared_size, status, content_type,
//!                  size, width, height, variants, created_at}]                (metadata only, no bytes or URLs)
//!   "polls":     [{id, room_id, message_id, creator_id, question, multiple_choice, max_choices, anonymous,
//!                  results_visibility, closes_at, closed_at, voter_count, created_at,
//!                  options: [{id, position, label, votes}], votes: [{user_id, option_id, voted_at}] | null (anonymous)}]
//!   "surveys":   [{id, room_id, message_id, creator_id, title, description, results_visibility, closes_at,
//!                  closed_at, response_count, created_at, questions: [{id, position, kind, prompt, required, scale,
//!                  max_choices, options: [{id, position, label}]}], responses: [{id, user_id, submitted_at,
//!                  answers: [{question_id, option_ids, text, rating}]}]}]
//!   "events":    [{id, group_id, room_id, creator_id, title, description, location, starts_at, ends_at, timezone,
//!                  rrule, rdates, exdates, split_from, created_at, updated_at,
//!                  overrides: [{original_start, cancelled, title, description, location, starts_at, ends_at}],
//!                  rsvps: [{original_start, user_id, status}]}]
//! }
//! ```

use std::io::Write;

use sea_orm::{AccessMode, IsolationLevel};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, FromQueryResult,
    Statement, TransactionTrait,
};
use uuid::Uuid;

pub const FORMAT_VERSION: u32 = 1;
/// Rows fetched per round trip.
const PAGE: usize = 500;

/// Array sections in output order: name and query (`$C` = the community id).
const SECTIONS: [(&str, &str); 11] = [
    (
        "groups",
        "SELECT id, parent_id, name, depth, created_at FROM groups WHERE community_id = $C \
         ORDER BY depth, created_at, id",
    ),
    (
        "rooms",
        "SELECT r.id, r.group_id, r.name, r.topic, r.private, r.last_seq, r.created_at, \
           CASE WHEN r.private THEN (SELECT coalesce(json_agg(rm.user_id ORDER BY rm.user_id), '[]') \
             FROM room_members rm WHERE rm.room_id = r.id) END AS private_members \
         FROM rooms r WHERE r.community_id = $C ORDER BY r.created_at, r.id",
    ),
    (
        "roles",
        "SELECT id, name, permissions, builtin, created_at FROM roles WHERE community_id = $C \
         ORDER BY created_at, id",
    ),
    (
        "members",
        "SELECT m.user_id, u.username, u.display_name, m.joined_at, \
           (SELECT coalesce(json_agg(json_build_object('role_id', g.role_id, 'role', ro.name, \
              'scope_kind', g.scope_kind, 'scope_id', g.scope_id, 'granted_by', g.granted_by) \
              ORDER BY g.created_at), '[]') \
            FROM role_grants g JOIN roles ro ON ro.id = g.role_id \
            WHERE g.community_id = $C AND g.user_id = m.user_id) AS grants \
         FROM community_members m JOIN users u ON u.id = m.user_id \
         WHERE m.community_id = $C ORDER BY m.joined_at, m.user_id",
    ),
    (
        "overrides",
        "SELECT id, scope_kind, scope_id, subject_kind, subject_id, allow, deny, updated_by, \
           updated_at FROM overrides WHERE community_id = $C ORDER BY created_at, id",
    ),
    (
        "bans",
        "SELECT user_id, banned_by, reason, created_at FROM bans WHERE community_id = $C \
         ORDER BY created_at, user_id",
    ),
    (
        "messages",
        "SELECT m.id, m.room_id, m.seq, m.sender_id, \
           CASE WHEN m.deleted_at IS NULL THEN m.content END AS content, m.reply_to, \
           m.attachments, m.mentions, m.poll_id, m.survey_id, m.created_at, m.edited_at, m.deleted_at, \
           (SELECT coalesce(json_agg(json_build_object('user_id', x.user_id, 'emoji', x.emoji, \
              'created_at', x.created_at) ORDER BY x.created_at, x.user_id, x.emoji), '[]') \
            FROM reactions x WHERE x.message_id = m.id) AS reactions \
         FROM rooms r JOIN messages m ON m.room_id = r.id \
         WHERE r.community_id = $C ORDER BY r.created_at, r.id, m.seq",
    ),
    (
        "attachments",
        "SELECT a.id, a.room_id, a.uploader_id, a.filename, a.declared_type, a.declared_size, \
           a.status, a.content_type, a.size, a.width, a.height, \
           (SELECT coalesce(json_agg(v - 'url'), '[]') FROM jsonb_array_elements(a.variants) v) AS variants, \
           a.created_at \
         FROM rooms r JOIN attachments a ON a.room_id = r.id \
         WHERE r.community_id = $C ORDER BY a.created_at, a.id",
    ),
    (
        "polls",
        "SELECT p.id, p.room_id, p.message_id, p.creator_id, p.question, p.multiple_choice, \
           p.max_choices, p.anonymous, p.results_visibility, p.closes_at, p.closed_at, \
           p.voter_count, p.created_at, \
           (SELECT coalesce(json_agg(json_build_object('id', o.id, 'position', o.position, \
              'label', o.label, 'votes', o.votes) ORDER BY o.position), '[]') \
            FROM poll_options o WHERE o.poll_id = p.id) AS options, \
           CASE WHEN NOT p.anonymous THEN (SELECT coalesce(json_agg(json_build_object( \
              'user_id', v.user_id, 'option_id', v.option_id, 'voted_at', v.voted_at) \
              ORDER BY v.voted_at, v.user_id), '[]') FROM poll_votes v WHERE v.poll_id = p.id) END AS votes \
         FROM rooms r JOIN polls p ON p.room_id = r.id \
         WHERE r.community_id = $C ORDER BY p.created_at, p.id",
    ),
    (
        "surveys",
        "SELECT s.id, s.room_id, s.message_id, s.creator_id, s.title, s.description, \
           s.results_visibility, s.closes_at, s.closed_at, s.response_count, s.created_at, \
           (SELECT coalesce(json_agg(json_build_object('id', q.id, 'position', q.position, \
              'kind', q.kind, 'prompt', q.prompt, 'required', q.required, 'scale', q.scale, \
              'max_choices', q.max_choices, 'options', \
              (SELECT coalesce(json_agg(json_build_object('id', so.id, 'position', so.position, \
                 'label', so.label) ORDER BY so.position), '[]') \
               FROM survey_options so WHERE so.question_id = q.id)) ORDER BY q.position), '[]') \
            FROM survey_questions q WHERE q.survey_id = s.id) AS questions, \
           (SELECT coalesce(json_agg(json_build_object('id', sr.id, 'user_id', sr.user_id, \
              'submitted_at', sr.submitted_at, 'answers', \
              (SELECT coalesce(json_agg(json_build_object('question_id', sa.question_id, \
                 'option_ids', sa.option_ids, 'text', sa.text, 'rating', sa.rating)), '[]') \
               FROM survey_answers sa WHERE sa.response_id = sr.id)) ORDER BY sr.submitted_at, sr.id), '[]') \
            FROM survey_responses sr WHERE sr.survey_id = s.id) AS responses \
         FROM rooms r JOIN surveys s ON s.room_id = r.id \
         WHERE r.community_id = $C ORDER BY s.created_at, s.id",
    ),
    (
        "events",
        "SELECT e.id, e.group_id, e.room_id, e.creator_id, e.title, e.description, e.location, \
           e.starts_at, e.ends_at, e.timezone, e.rrule, e.rdates, e.exdates, e.split_from, \
           e.created_at, e.updated_at, \
           (SELECT coalesce(json_agg(json_build_object('original_start', o.original_start, \
              'cancelled', o.cancelled, 'title', o.title, 'description', o.description, \
              'location', o.location, 'starts_at', o.starts_at, 'ends_at', o.ends_at) \
              ORDER BY o.original_start), '[]') FROM event_overrides o WHERE o.event_id = e.id) AS overrides, \
           (SELECT coalesce(json_agg(json_build_object('original_start', v.original_start, \
              'user_id', v.user_id, 'status', v.status) ORDER BY v.original_start, v.user_id), '[]') \
            FROM event_rsvps v WHERE v.event_id = e.id) AS rsvps \
         FROM events e WHERE e.community_id = $C ORDER BY e.created_at, e.id",
    ),
];

const COMMUNITY: &str = "SELECT id, name, description, visibility, created_by, member_count, \
    max_depth, created_at, updated_at FROM communities WHERE id = $C";

#[derive(FromQueryResult)]
struct JsonRow {
    j: String,
}

fn query(sql: &str, community: Uuid) -> String {
    // The id is a parsed `Uuid`: its text cannot break out of the literal. Inlined because a
    // cursor's query is sent as a simple statement.
    let literal = format!("'{community}'::uuid");
    format!(
        "SELECT row_to_json(t)::text AS j FROM ({}) t",
        sql.replace("$C", &literal)
    )
}

fn raw(sql: String) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}

/// Writes the export of `community` to `out`; returns how many rows each section had.
pub async fn write(
    db: &DatabaseConnection,
    community: Uuid,
    out: impl Write,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let head = JsonRow::find_by_statement(raw(query(COMMUNITY, community)))
        .one(&txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("unknown community: {community}"))?;
    let exported_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    write!(
        out,
        "{{\"format_version\":{FORMAT_VERSION},\"exported_at\":\"{exported_at}\",\n\"community\":{}",
        head.j
    )?;
    let mut counts = Vec::with_capacity(SECTIONS.len());
    for (name, sql) in SECTIONS {
        write!(out, ",\n\"{name}\":[")?;
        let rows = section(&txn, &query(sql, community), &mut out).await?;
        write!(out, "\n]")?;
        counts.push((name, rows));
    }
    writeln!(out, "\n}}")?;
    out.flush()?;
    txn.commit().await?;
    Ok(counts)
}

/// Streams one query's rows through a cursor as the elements of a JSON array.
async fn section(
    txn: &DatabaseTransaction,
    sql: &str,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    txn.execute_unprepared(&format!("DECLARE export NO SCROLL CURSOR FOR {sql}"))
        .await?;
    let mut rows = 0u64;
    loop {
        let page = JsonRow::find_by_statement(raw(format!("FETCH {PAGE} FROM export")))
            .all(txn)
            .await?;
        for row in &page {
            out.write_all(if rows == 0 { b"\n" } else { b",\n" })?;
            out.write_all(row.j.as_bytes())?;
            rows += 1;
        }
        if page.len() < PAGE {
            break;
        }
    }
    txn.execute_unprepared("CLOSE export").await?;
    Ok(rows)
}
