//! Postgres connection and migrations.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Config;

pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.database_url.expose().clone());
    options
        .max_connections(config.database_max_connections)
        .min_connections(1)
        // A Postgres that is down must turn into `unavailable` quickly, not a hung request.
        .connect_timeout(config.database_acquire_timeout)
        .acquire_timeout(config.database_acquire_timeout)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!("GUILDHALL_DATABASE_URL: cannot connect to Postgres: {e}"))
}

pub async fn migrate_up(db: &DatabaseConnection, steps: Option<u32>) -> anyhow::Result<()> {
    Migrator::up(db, steps).await?;
    Ok(())
}

pub async fn migrate_down(db: &DatabaseConnection, steps: u32) -> anyhow::Result<()> {
    Migrator::down(db, Some(steps)).await?;
    Ok(())
}

/// `(name, applied)` for every known migration, oldest first.
pub async fn migration_status(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, bool)>> {
    let migrations = Migrator::get_migration_with_status(db).await?;
    Ok(migrations
        .iter()
        .map(|m| {
            (
                m.name().to_owned(),
                matches!(m.status(), migration::MigrationStatus::Applied),
            )
        })
        .collect())
}
