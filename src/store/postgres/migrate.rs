//! Schema migrations from `sql/`, applied in order by refinery, which keeps
//! its own history table (`refinery_schema_history`) and refuses a changed
//! or missing migration.
//!
//! Files are named `sql/NNNN_verb_noun.sql` and never edited once merged;
//! every file is listed here (a test checks that none is forgotten).

use deadpool_postgres::Pool;
use refinery::{Migration, Runner};

/// `(refinery name, SQL)` of every migration, oldest first.
const MIGRATIONS: &[(&str, &str)] = &[
    ("V1__create_schema", include_str!("../../../sql/0001_create_schema.sql")),
    (
        "V2__idempotency_keys",
        include_str!("../../../sql/0002_idempotency_keys.sql"),
    ),
];

/// Applies every migration not yet applied.
///
/// # Errors
/// Postgres unreachable, a failing migration, or a changed applied one.
pub async fn run(pool: &Pool) -> anyhow::Result<usize> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(name, sql)| Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut client;
    let report = Runner::new(&migrations)
        .set_abort_divergent(true)
        .run_async(client)
        .await?;
    Ok(report.applied_migrations().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("sql/ exists")
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8 name")
            })
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len());
        for (i, (file, (name, _))) in files.iter().zip(MIGRATIONS).enumerate() {
            let number: usize = file[..4].parse().expect("NNNN_ prefix");
            assert_eq!(number, i + 1, "{file}");
            assert!(name.starts_with(&format!("V{number}__")), "{name}");
        }
    }
}
