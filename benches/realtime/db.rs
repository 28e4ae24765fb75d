//! Database (same steps as tests/api/helpers.rs: admin URL, fresh database, migrations).

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use uuid::Uuid;

pub(crate) fn admin_url() -> String {
    std::env::var("GUILDHALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://guildhall:guildhall@127.0.0.1:5432/postgres".to_owned())
}

/// `postgres://.../postgres` -> `postgres://.../<name>`.
pub(crate) fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

pub(crate) async fn admin_connection() -> DatabaseConnection {
    let mut options = ConnectOptions::new(admin_url());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .expect("connect to the admin database")
}

/// Creates and migrates a fresh database; returns its name.
pub(crate) async fn create_database() -> String {
    let admin = admin_connection().await;
    let name = format!("gh_bench_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the bench database");
    admin.close().await.unwrap();
    let mut options = ConnectOptions::new(database_url(&name));
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    guildhall::db::migrate_up(&db, None)
        .await
        .expect("migrations apply");
    db.close().await.unwrap();
    name
}

pub(crate) async fn drop_database(name: &str) {
    let admin = admin_connection().await;
    let dropped = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    if let Err(err) = dropped {
        eprintln!("realtime bench: could not drop database {name}: {err}");
    }
    admin.close().await.unwrap();
}

/// `SHOW <setting>` on the bench database (the server's sessions use the same default).
pub(crate) async fn show_setting(database: &str, setting: &str) -> String {
    let mut options = ConnectOptions::new(database_url(database));
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SHOW {setting}"),
        ))
        .await
        .unwrap()
        .expect("SHOW answers a row");
    let value: String = row.try_get_by_index(0).unwrap();
    db.close().await.unwrap();
    value
}
