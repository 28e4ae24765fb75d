//! Casbin itself: the model, the `onPath` matcher function, and enforcers built on demand
//! (explain cross-checks, tests). Checks are served by `index`, compiled from the same lines.

use casbin::function_map::OperatorFunction;
use casbin::rhai::Dynamic;
use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::adapter::PgAdapter;
use super::catalogue::Perm;
use super::lines::{Line, path_string, user_name};

pub const MODEL: &str = include_str!("model.conf");

/// `onPath(path, scope)`: is `scope` one of the `|`-separated scopes of the request path.
fn on_path(path: Dynamic, scope: Dynamic) -> Dynamic {
    let path = casbin::function_map::dynamic_to_str(&path);
    let scope = casbin::function_map::dynamic_to_str(&scope);
    let needle = format!("|{scope}|");
    path.contains(needle.as_str()).into()
}

async fn with_functions(mut enforcer: Enforcer) -> Enforcer {
    enforcer.add_function("onPath", OperatorFunction::Arg2(on_path));
    enforcer
}

/// A community's enforcer over its stored lines (through the Postgres adapter).
pub async fn from_db(db: DatabaseConnection, community_id: Uuid) -> casbin::Result<Enforcer> {
    let model = DefaultModel::from_str(MODEL).await?;
    let mut enforcer = Enforcer::new(model, PgAdapter::new(db, community_id)).await?;
    // A filtered adapter (one community) is not loaded by `new`.
    enforcer.load_policy().await?;
    Ok(with_functions(enforcer).await)
}

/// An enforcer over lines held in memory, in their order.
pub async fn from_lines(lines: &[Line]) -> casbin::Result<Enforcer> {
    let model = DefaultModel::from_str(MODEL).await?;
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await?;
    let (p, g): (Vec<&Line>, Vec<&Line>) = lines.iter().partition(|l| l.ptype == "p");
    enforcer
        .add_policies(p.into_iter().map(|l| l.values.clone()).collect())
        .await?;
    enforcer
        .add_grouping_policies(g.into_iter().map(|l| l.values.clone()).collect())
        .await?;
    Ok(with_functions(enforcer).await)
}

/// Casbin's decision. (`enforce_ex` would name the deciding line, but casbin 2.20 ties it to the
/// `logging` feature and a logger thread per enforcer; the index reports the rules instead.)
pub fn decide(enforcer: &Enforcer, user: Uuid, path: &[Uuid], perm: Perm) -> casbin::Result<bool> {
    enforcer.enforce((user_name(user), path_string(path), perm.name()))
}
