//! Schema migrations. Triggers and functions live here as SQL, each with a comment naming the
//! invariant it keeps.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261201_000001_kernel;
mod m20261201_000002_identity;
mod m20261201_000003_communities;
mod m20261201_000004_permissions;
mod m20261201_000005_messages;
mod m20261202_000006_polls;
mod m20261202_000007_calendar;
mod m20261202_000008_media;
mod m20261203_000009_batch_seq;
mod m20261204_000010_token_cutoffs;

/// `MigrationTrait` for a migration that is two SQL scripts, `up` and `down`.
#[macro_export]
macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .get_connection()
                    .execute_unprepared($up)
                    .await
                    .map(|_| ())
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .get_connection()
                    .execute_unprepared($down)
                    .await
                    .map(|_| ())
            }
        }
    };
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_kernel::Migration),
            Box::new(m20261201_000002_identity::Migration),
            Box::new(m20261201_000003_communities::Migration),
            Box::new(m20261201_000004_permissions::Migration),
            Box::new(m20261201_000005_messages::Migration),
            Box::new(m20261202_000006_polls::Migration),
            Box::new(m20261202_000007_calendar::Migration),
            Box::new(m20261202_000008_media::Migration),
            Box::new(m20261203_000009_batch_seq::Migration),
            Box::new(m20261204_000010_token_cutoffs::Migration),
        ]
    }
}
