//! A Casbin `Adapter` over the `casbin_rule` table, scoped to one community (casbin-sea-orm
//! targets sea-orm 1). Lines load in stored `position` order, which the model's priority
//! effect depends on; membership `g` lines (kept by a trigger) load after the policy lines.

use async_trait::async_trait;
use casbin::{Adapter, Filter, Model};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use uuid::Uuid;

use super::lines::Line;

const P_FIELDS: usize = 6;
const G_FIELDS: usize = 3;

pub struct PgAdapter {
    db: DatabaseConnection,
    community_id: Uuid,
}

impl PgAdapter {
    pub fn new(db: DatabaseConnection, community_id: Uuid) -> Self {
        Self { db, community_id }
    }
}

fn casbin_error(err: sea_orm::DbErr) -> casbin::Error {
    casbin::Error::AdapterError(casbin::error::AdapterError(Box::new(err)))
}

/// Every line of a community, policy lines in evaluation order, then membership lines.
pub async fn load_lines(
    db: &impl ConnectionTrait,
    community_id: Uuid,
) -> Result<Vec<Line>, sea_orm::DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule WHERE community_id = $1 \
         ORDER BY origin = 'member', ptype DESC, position, id",
        [community_id.into()],
    );
    let rows = db.query_all_raw(stmt).await?;
    rows.iter()
        .map(|row| {
            let ptype: String = row.try_get("", "ptype")?;
            let fields = if ptype == "g" { G_FIELDS } else { P_FIELDS };
            let values = (0..fields)
                .map(|i| row.try_get::<String>("", &format!("v{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Line { ptype, values })
        })
        .collect()
}

async fn load_member_lines(
    db: &impl ConnectionTrait,
    community_id: Uuid,
) -> Result<Vec<Line>, sea_orm::DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT v0, v1, v2 FROM casbin_rule WHERE community_id = $1 AND origin = 'member'",
        [community_id.into()],
    );
    let rows = db.query_all_raw(stmt).await?;
    rows.iter()
        .map(|row| {
            let values = (0..G_FIELDS)
                .map(|i| row.try_get::<String>("", &format!("v{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Line {
                ptype: "g".into(),
                values,
            })
        })
        .collect()
}

/// Replaces the compiled policy lines of a community (membership lines stay), keeping order.
pub async fn store_policy_lines(
    db: &impl ConnectionTrait,
    community_id: Uuid,
    lines: &[Line],
) -> Result<(), sea_orm::DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM casbin_rule WHERE community_id = $1 AND origin = 'policy'",
        [community_id.into()],
    ))
    .await?;
    for (chunk_index, chunk) in lines.chunks(500).enumerate() {
        insert_chunk(db, community_id, chunk_index * 500, chunk).await?;
    }
    Ok(())
}

async fn insert_chunk(
    db: &impl ConnectionTrait,
    community_id: Uuid,
    first_position: usize,
    lines: &[Line],
) -> Result<(), sea_orm::DbErr> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO casbin_rule (community_id, origin, position, ptype, v0, v1, v2, v3, v4, v5) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(1 + lines.len() * 8);
    values.push(community_id.into());
    for (i, line) in lines.iter().enumerate() {
        let placeholders: Vec<String> = (values.len() + 1..values.len() + 9)
            .map(|n| format!("${n}"))
            .collect();
        sql.push_str(if i == 0 { "" } else { "," });
        sql.push_str(&format!("($1, 'policy', {})", placeholders.join(", ")));
        values.push(i32::try_from(first_position + i).unwrap_or(i32::MAX).into());
        values.push(line.ptype.clone().into());
        for k in 0..6 {
            values.push(line.values.get(k).cloned().unwrap_or_default().into());
        }
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?;
    Ok(())
}

fn section(ptype: &str) -> &'static str {
    if ptype.starts_with('g') { "g" } else { "p" }
}

fn matches_filter(line: &Line, filter: &Filter<'_>) -> bool {
    let wanted = if line.ptype.starts_with('g') {
        &filter.g
    } else {
        &filter.p
    };
    wanted
        .iter()
        .enumerate()
        .all(|(i, value)| value.is_empty() || line.values.get(i).is_some_and(|v| v == value))
}

#[async_trait]
impl Adapter for PgAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        for line in load_lines(&self.db, self.community_id)
            .await
            .map_err(casbin_error)?
        {
            m.add_policy(section(&line.ptype), &line.ptype, line.values);
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        f: Filter<'a>,
    ) -> casbin::Result<()> {
        for line in load_lines(&self.db, self.community_id)
            .await
            .map_err(casbin_error)?
        {
            if matches_filter(&line, &f) {
                m.add_policy(section(&line.ptype), &line.ptype, line.values);
            }
        }
        Ok(())
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut lines = Vec::new();
        for (sec, ptype) in [("p", "p"), ("g", "g")] {
            for values in m.get_policy(sec, ptype) {
                lines.push(Line {
                    ptype: ptype.into(),
                    values,
                });
            }
        }
        // Membership lines are the trigger's; saving them as policy lines would duplicate them.
        let members = load_member_lines(&self.db, self.community_id)
            .await
            .map_err(casbin_error)?;
        lines.retain(|line| !members.contains(line));
        store_policy_lines(&self.db, self.community_id, &lines)
            .await
            .map_err(casbin_error)
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM casbin_rule WHERE community_id = $1 AND origin = 'policy'",
                [self.community_id.into()],
            ))
            .await
            .map_err(casbin_error)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        true
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.add_policies("", ptype, vec![rule]).await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let next = self.next_position().await.map_err(casbin_error)?;
        let lines: Vec<Line> = rules
            .into_iter()
            .map(|values| Line {
                ptype: ptype.into(),
                values,
            })
            .collect();
        insert_chunk(&self.db, self.community_id, next, &lines)
            .await
            .map_err(casbin_error)?;
        Ok(true)
    }

    async fn remove_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.remove_policies("", ptype, vec![rule]).await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let mut removed = false;
        for rule in rules {
            let mut values: Vec<Value> = vec![self.community_id.into(), ptype.into()];
            let mut sql =
                String::from("DELETE FROM casbin_rule WHERE community_id = $1 AND ptype = $2");
            for (i, value) in rule.into_iter().enumerate() {
                sql.push_str(&format!(" AND v{i} = ${}", values.len() + 1));
                values.push(value.into());
            }
            let result = self
                .db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    values,
                ))
                .await
                .map_err(casbin_error)?;
            removed |= result.rows_affected() > 0;
        }
        Ok(removed)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        let mut values: Vec<Value> = vec![self.community_id.into(), ptype.into()];
        let mut sql =
            String::from("DELETE FROM casbin_rule WHERE community_id = $1 AND ptype = $2");
        for (offset, value) in field_values.into_iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            sql.push_str(&format!(
                " AND v{} = ${}",
                field_index + offset,
                values.len() + 1
            ));
            values.push(value.into());
        }
        let result = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await
            .map_err(casbin_error)?;
        Ok(result.rows_affected() > 0)
    }
}

impl PgAdapter {
    async fn next_position(&self) -> Result<usize, sea_orm::DbErr> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT COALESCE(max(position) + 1, 0) AS next FROM casbin_rule WHERE community_id = $1",
                [self.community_id.into()],
            ))
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<i32>("", "next").ok())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0))
    }
}
